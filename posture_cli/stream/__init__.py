"""``posture stream``: a live client that feeds the server's /v1/stream from a device.

devices.py (sim, file replay), serial.py (serial ports and their text lines),
resend.py (resend buffer, backoff), client.py (the WebSocket session loop),
view.py (rich live view, JSON lines, summary).
"""
