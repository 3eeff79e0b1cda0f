"""The inference server (HTTP + WebSocket)."""
