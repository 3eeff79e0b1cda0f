"""IoT devices over MQTT: a broker's device topics fed into stream sessions.

- ``settings.py``: ``MqttSettings`` (``POSTURE_MQTT_*``) and the broker address of a URL.
- ``topics.py``: the topic layout, the partition rule (crc32 of the device id mod N).
- ``connection.py``: paho-mqtt 2 driven by the asyncio loop (no thread), reconnecting with backoff.
- ``device.py``: one device's frames in order through one ``DirectSession``.
- ``bridge.py``: ``MqttBridge``: subscriptions, devices, publishes, start and stop.
"""
