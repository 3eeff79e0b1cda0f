"""The browser test client that `posture serve` serves at /, driven in headless Chromium
against the real server on a free port.

Chromium is the ``browser`` fixture of tests/serving/conftest.py. Screenshots on a phone
and a desktop viewport land in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from tests.conftest import REPO, run_cli
from tests.serving import serving_support
from tests.serving.serving_support import ServerProcess

ARTIFACTS = REPO / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
PREDICTION_TIMEOUT_MS = 20_000  # first prediction: ~2.7 s here (a 2 s window); slack for busy CI
WS_PREDICTIONS = "SELECT COUNT(*) FROM predictions WHERE source = 'ws'"
# Served by the page's own script, in the page: an upright phone held still, ~60 Hz like a
# real phone. Acceleration in m/s^2 with gravity (+g up the screen), rotation rates in deg/s.
START_MOTION = """(hz) => {
  let n = 0;
  window.__motion = setInterval(() => {
    const wobble = 0.02 * Math.sin(n++ / 3);
    window.dispatchEvent(new DeviceMotionEvent("devicemotion", {
      accelerationIncludingGravity: {x: 0.3 + wobble, y: 9.7 - wobble, z: 0.2 + wobble},
      rotationRate: {alpha: 0.573, beta: 1.146, gamma: -2.292},
      interval: 1000 / hz,
    }));
  }, 1000 / hz);
}"""
# The same motion in the data contract: rotationRate beta, gamma, alpha about x, y, z -> rad/s.
MOTION_AS_CONTRACT = [0.3, 9.7, 0.2, 0.02, -0.04, 0.01]
MARKUP = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script><b id="bold">bold</b>'


class Client:
    """The page in one browser context, with the few reads the tests need."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))

    def open(self, url: str) -> None:
        self.page.goto(url + "/")
        expect(self.page.locator("#bars .bar-row")).to_have_count(5)  # the classes, from GET /v1/models

    def start_simulated(self, posture: str) -> None:
        self.page.select_option("#sim-posture", posture)
        self.page.click("#start")

    def count(self) -> int:
        return int(self.page.text_content("#stat-count") or "0")

    def wait_predictions(self, n: int, timeout_ms: float = PREDICTION_TIMEOUT_MS) -> None:
        self.page.wait_for_function(
            "n => Number(document.getElementById('stat-count').textContent) >= n",
            arg=n,
            timeout=timeout_ms,
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def servers(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    """The module's server, last in the list: the restart test appends the one it restarted."""
    running = [ServerProcess(trained_home, tmp_path_factory.mktemp("browser-server"))]
    yield running
    assert running[-1].stop() == 0


@pytest.fixture
def server(servers: list[ServerProcess]) -> ServerProcess:
    return servers[-1]


@pytest.fixture
def client(browser: Browser) -> Iterator[Client]:
    context = browser.new_context(viewport=PHONE)
    client = Client(context.new_page())
    yield client
    context.close()
    assert client.errors == [], "uncaught errors in the page"


def test_simulated_walking_streams_and_is_predicted(server: ServerProcess, client: Client) -> None:
    page = client.page
    client.open(server.url)
    expect(page.locator("#state")).to_have_attribute("data-state", "idle")
    before = server.query(WS_PREDICTIONS)[0][0]

    started = time.monotonic()
    client.start_simulated("walking")
    client.wait_predictions(1)
    first_prediction_s = time.monotonic() - started
    client.wait_predictions(4)

    expect(page.locator("#posture")).to_have_text("walking")
    expect(page.locator("#state")).to_have_attribute("data-state", "connected")
    expect(page.locator("#stat-model")).to_contain_text("posture v1 · champion · 50 Hz · 2 s windows")
    expect(page.locator("#confidence")).to_have_text(re.compile(r"confidence \d+%"))
    expect(page.locator("#stat-rtt")).to_have_text(re.compile(r"\d+ ms"))
    assert "walking" in (page.get_attribute("#timeline", "aria-label") or "")
    frames, samples = map(float, re.findall(r"[\d.]+", page.text_content("#stat-fps") or ""))
    assert 3.0 <= frames <= 7.0 and 40 <= samples <= 60, page.text_content("#stat-fps")  # 5 frames of 10 at 50 Hz
    assert server.wait_rows(WS_PREDICTIONS, before + 4) >= before + 4  # logged by the real server
    origin = server.url.removeprefix("http://")
    assert all(re.match(rf"(http|ws)://{re.escape(origin)}/", url) for url in client.requests), (
        client.requests
    )  # offline
    assert f"ws://{origin}/v1/stream" in client.requests
    key_url = page.evaluate("async () => (await import('./connection.js')).streamUrl('k&y =')")
    assert key_url == f"ws://{origin}/v1/stream?token=k%26y+%3D"  # the API key field, as `token`

    client.screenshot("browser-client-phone.png")
    page.set_viewport_size(DESKTOP)
    page.wait_for_timeout(300)  # the timeline canvas redraws on resize
    client.screenshot("browser-client-desktop.png")
    (ARTIFACTS / "browser-client-timing.json").write_text(json.dumps({"first_prediction_s": first_prediction_s}))
    print(f"first prediction in the page {first_prediction_s:.2f} s after Start")


def test_devicemotion_events_reach_the_server(server: ServerProcess, client: Client) -> None:
    page = client.page
    client.open(server.url)
    before = server.query(WS_PREDICTIONS)[0][0]
    page.check("input[name=source][value=motion]")
    expect(page.locator("#motion-options")).to_be_visible()
    page.click("#start")
    page.evaluate(START_MOTION, 60)
    try:
        client.wait_predictions(3)
    finally:
        page.evaluate("clearInterval(window.__motion)")

    reading = [float(v) for v in re.findall(r"-?\d+\.\d+", page.text_content("#stat-reading") or "")]
    assert reading == pytest.approx(MOTION_AS_CONTRACT, abs=0.03)  # axes and deg/s -> rad/s
    expect(page.locator("#posture")).to_have_text("standing")  # gravity up the screen: upright, still
    samples = float(re.findall(r"[\d.]+", page.text_content("#stat-fps") or "")[1])
    assert 40 <= samples <= 60  # 60 Hz events resampled to the model's 50 Hz
    assert server.wait_rows(WS_PREDICTIONS, before + 3) >= before + 3


def test_markup_from_the_server_is_shown_as_text(server: ServerProcess, client: Client) -> None:
    """A prediction from the real server, its label swapped for HTML on the way to the page."""
    page = client.page
    injected: list[dict[str, Any]] = []

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()  # page -> server frames pass through untouched

        def from_server(message: str | bytes) -> None:
            if injected:
                return  # keep the crafted prediction on screen
            data = json.loads(message)
            if data.get("type") != "prediction":
                ws.send(message)
                return
            crafted = data | {
                "label": MARKUP,
                "smoothed_label": MARKUP,
                "model_version": MARKUP,
                "probabilities": {MARKUP: 0.97, "walking": 0.03},
                "smoothed_probabilities": {MARKUP: 0.96, "walking": 0.04},
            }
            ws.send(json.dumps(crafted))
            ws.send(json.dumps({"type": "error", "code": MARKUP, "detail": MARKUP}))
            injected.append(crafted)

        upstream.on_message(from_server)

    page.route_web_socket(re.compile(r"/v1/stream"), route)
    client.open(server.url)
    client.start_simulated("walking")
    client.wait_predictions(1)

    expect(page.locator("#posture")).to_have_text(MARKUP)
    expect(page.locator("#bars .bar-name").first).to_have_text(MARKUP)
    expect(page.locator("#legend li").first).to_have_text(MARKUP)
    expect(page.locator("#messages li").first).to_have_text(f"server: {MARKUP}: {MARKUP}")
    expect(page.locator("#window-detail")).to_contain_text(MARKUP)
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('body img, body script, #bold').length") == 0
    client.screenshot("browser-client-markup.png")


def test_api_key_field_when_keys_are_required(
    trained_home: Path,
    tmp_path: Path,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = client.page
    monkeypatch.setenv("POSTURE_DATA_DIR", str(tmp_path))  # the key goes into this server's store
    key = run_cli("keys", "create", "browser-test", home=trained_home).stdout.strip()
    server = ServerProcess(trained_home, tmp_path, env={"POSTURE_API_KEYS_REQUIRED": "true"})
    try:
        page.goto(server.url + "/")
        page.fill("#api-key", "pk_not_a_key")
        page.click("#start")
        expect(page.locator("#messages li").first).to_have_text(re.compile(r"refused the API key \(401\)"))
        expect(page.locator("#state")).to_have_attribute("data-state", "stopped")

        page.fill("#api-key", key)
        page.click("#start")
        client.wait_predictions(1)  # the key went as `token` on the handshake
        expect(page.locator("#stat-model")).to_contain_text("posture v1")
    finally:
        assert server.stop() == 0


def test_reconnects_after_the_server_restarts(
    servers: list[ServerProcess],
    trained_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = client.page
    first = servers[-1]
    client.open(first.url)
    client.start_simulated("standing")
    client.wait_predictions(2)
    assert first.stop() == 0  # SIGTERM: the session gets 1001 "going away", the process exits
    expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    expect(page.locator("#state")).to_contain_text("retrying in")
    count = client.count()

    monkeypatch.setattr(serving_support, "free_port", lambda: first.port)  # start again on the same port
    servers.append(ServerProcess(trained_home, tmp_path_factory.mktemp("browser-server")))
    expect(page.locator("#state")).to_have_attribute("data-state", "connected", timeout=20_000)
    client.wait_predictions(count + 2)
    assert servers[-1].wait_rows(WS_PREDICTIONS, 2) >= 2  # made by the new process
