"""The ``posture`` command tree. Thin: parse options, call a flow or the server, render."""
