"""The stream session and its adapters: WebSocket, Sensor Logger push; windowing, state, protocol, limits."""
