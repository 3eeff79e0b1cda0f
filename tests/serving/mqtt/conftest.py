"""Fixtures of the MQTT bridge tests: a Mosquitto of the module's own and a server bridged to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.mqtt.mqtt_support import Broker, wait_connected
from tests.serving.serving_support import ServerProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    process = Broker(tmp_path_factory.mktemp("broker"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def bridged(trained_home: Path, broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`posture serve --mqtt URL`, its bridge connected."""
    server = ServerProcess(trained_home, tmp_path_factory.mktemp("mqtt-server"), args=("--mqtt", broker.url))
    wait_connected(server)
    yield server
    assert server.stop() == 0
