"""The browser client's Record panel in headless Chromium (Debian's package, driven by playwright)
against the real server: pick a label and a subject, count down, record, change the label, stop.
The files land in the incoming folder and `posture retrain` takes them in as a new version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import run_cli
from tests.serving.recording.recording_support import read, recorded_files, wait_for_entries
from tests.serving.serving_support import ServerProcess
from tests.serving.test_browser_client import ARTIFACTS, PHONE, Client

RECORDING_TIMEOUT_MS = 20_000  # countdown (1 s) + connect + the server's answer; slack for busy CI


def seconds_shown(client: Client, label: str) -> float:
    text = client.page.text_content(f"#record-seconds li[data-label={label}]") or ""
    return float(re.findall(r"[\d.]+", text)[0])


def test_the_record_panel_records_labelled_files_that_retrain_takes_in(
    home: Path, tmp_path: Path, browser: Browser
) -> None:
    folder = tmp_path / "incoming"
    env = {"POSTURE_RECORDING_ENABLED": "true", "POSTURE_RECORDING_DIR": str(folder)}
    server = ServerProcess(home, tmp_path / "serve", env=env)
    context = browser.new_context(viewport=PHONE)
    client = Client(context.new_page())
    page = client.page
    try:
        client.open(server.url)
        expect(page.locator("#record-label option")).to_have_count(5)  # the model's classes
        expect(page.locator("#record-state")).to_have_attribute("data-state", "idle")
        page.select_option("#sim-posture", "walking")
        page.select_option("#record-label", "walking")
        page.fill("#record-subject", "kim")
        page.fill("#record-countdown", "1")
        page.click("#record-toggle")  # starts streaming too, then counts down
        expect(page.locator("#record-state")).to_have_attribute("data-state", "countdown")
        expect(page.locator("#record-state")).to_have_attribute("data-state", "recording", timeout=RECORDING_TIMEOUT_MS)
        expect(page.locator("#record-state")).to_have_text("● Recording walking (kim)")
        page.wait_for_timeout(4000)
        client.screenshot("browser-record-phone.png")
        page.select_option("#sim-posture", "sitting")
        page.select_option("#record-label", "sitting")  # splits the files
        expect(page.locator("#record-seconds li[data-label=sitting]")).to_be_visible(timeout=RECORDING_TIMEOUT_MS)
        page.wait_for_timeout(3000)
        page.click("#record-toggle")
        expect(page.locator("#record-state")).to_have_attribute("data-state", "idle")
        entries = wait_for_entries(folder, "kim", 2)
        page.wait_for_timeout(500)  # the server's answer to the stop
        shown = {label: seconds_shown(client, label) for label in ("walking", "sitting")}
        page.click("#start")  # stop streaming
    finally:
        context.close()
        assert server.stop() == 0
    assert client.errors == [], "uncaught errors in the page"
    assert [e["label"] for e in entries] == ["walking", "sitting"] and {e["source"] for e in entries} == {"ws"}
    written = {e["label"]: e["samples"] / 50.0 for e in entries}
    assert written["walking"] >= 3.5 and written["sitting"] >= 2.5
    assert shown == pytest.approx(written, abs=0.6)  # the panel shows what the server wrote
    found = recorded_files(folder, "kim")
    assert [len(read(p)) for p in found["walking"] + found["sitting"]] == [e["samples"] for e in entries]

    outcome = json.loads(
        run_cli("retrain", "--incoming", str(folder), "--trees", "3", "--margin", "0", "--json", home=home).stdout
    )
    assert int(outcome["version"]) >= 2, outcome
    dataset = json.loads((home / "data/datasets/sample/manifest.json").read_text())
    assert sorted(dataset["batches"][-1]["files"]) == sorted(e["file"] for e in entries)
    assert (ARTIFACTS / "browser-record-phone.png").is_file()
