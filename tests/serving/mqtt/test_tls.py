"""``mqtts://`` for real: a Mosquitto TLS listener with a throwaway CA, server and client
certificates (made here with ``cryptography``), the bridge connecting with the TLS settings
(CA file, client certificate and key, host name checked), a device's round trip through it;
and a bridge given another CA refuses the broker."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.serving.mqtt.mqtt_support import Broker, Device, wait_connected
from tests.serving.serving_support import CHANNELS, ServerProcess, expected_windows, json_frames, recording


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path = path.with_suffix(".key")
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key_path


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:  # the broker's certificate names the address the bridge dials
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA and the server and client certificates it signs: {ca, server, server_key, client, client_key}."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_common_name = f"posture test CA {folder.name}"
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name)])
    ca_cert = _certificate(ca_common_name, ca_key, ca_name, ca_key, ca=True)
    ca, _ = _write(folder / "ca.crt", ca_key, ca_cert)
    files = {"ca": ca}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert, key_path = _write(folder / f"{role}.crt", key, _certificate(role, key, ca_name, ca_key, ca=False))
        files[role], files[f"{role}_key"] = cert, key_path
    return files


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A listener that speaks only TLS and requires a client certificate signed by the CA."""
    extra = (
        "allow_anonymous true\n"
        f"cafile {pki['ca']}\ncertfile {pki['server']}\nkeyfile {pki['server_key']}\n"
        "require_certificate true\n"
    )
    broker = Broker(tmp_path_factory.mktemp("tls-broker"), extra=extra)
    yield broker
    broker.stop()


def tls_env(broker: Broker, ca: Path, cert: Path, key: Path) -> dict[str, str]:
    return {
        "POSTURE_MQTT_URL": f"mqtts://127.0.0.1:{broker.port}",
        "POSTURE_MQTT_CA_FILE": str(ca),
        "POSTURE_MQTT_CERT_FILE": str(cert),
        "POSTURE_MQTT_KEY_FILE": str(key),
    }


def test_the_bridge_serves_a_device_over_mqtts(
    tls_broker: Broker, pki: dict[str, Path], trained_home: Path, tmp_path: Path
) -> None:
    server = ServerProcess(
        trained_home, tmp_path / "server", env=tls_env(tls_broker, pki["ca"], pki["client"], pki["client_key"])
    )
    device = None
    try:
        wait_connected(server)
        tls = {"ca_certs": str(pki["ca"]), "certfile": str(pki["client"]), "keyfile": str(pki["client_key"])}
        device = Device(tls_broker, "tls-board", tls=tls)
        part = recording(trained_home, "s07-mixed-1", seconds=4.0)
        device.hello(rate_hz=50, channels=CHANNELS)
        device.send(json_frames(part, rows=50))
        windows = expected_windows(len(part))
        device.wait(windows)
        assert len(device.predictions) == windows and not device.errors
        rows = "SELECT COUNT(*) FROM predictions WHERE source = 'mqtt'"
        assert server.wait_rows(rows, windows) == windows
        assert server.metric("mqtt_connected") == 1
    finally:
        if device is not None:
            device.close()
        assert server.stop() == 0


def test_a_bridge_that_does_not_trust_the_brokers_certificate_does_not_connect(
    tls_broker: Broker, pki: dict[str, Path], trained_home: Path, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other-pki")  # another CA: the broker's certificate is not signed by it
    env = tls_env(tls_broker, other["ca"], pki["client"], pki["client_key"])
    server = ServerProcess(trained_home, tmp_path / "server", env=env)
    try:
        deadline = time.monotonic() + 20
        while "CERTIFICATE_VERIFY_FAILED" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "CERTIFICATE_VERIFY_FAILED" in server.log(), server.log()[-3000:]
        assert server.metric("mqtt_connected") == 0
        ready = httpx.get(f"{server.url}/readyz", timeout=10).json()
        assert ready["status"] == "degraded", ready
    finally:
        assert server.stop() == 0
