"""Who may record, on the real server: nobody while recording is off; where API keys are required,
only a key made with `posture keys create NAME --scope record`. A refusal is an error event, the
session goes on predicting, and no file is written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import websockets

from tests.conftest import run_cli
from tests.serving.recording.recording_support import (
    collect,
    manifest,
    of_type,
    posture_frames,
    wait_for_entries,
)
from tests.serving.serving_support import ServerProcess


def record_session(url: str, subject: str) -> list[dict[str, Any]]:
    async def session() -> list[dict[str, Any]]:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "record": {"label": "sitting", "subject": subject}}))
            for frame in posture_frames("sitting", 4.0, seed=21):
                await ws.send(frame)
            return await collect(ws)

    return asyncio.run(session())


def test_recording_off_is_a_clear_error_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    server = ServerProcess(home, tmp_path / "serve", env={"POSTURE_RECORDING_DIR": str(folder)})
    try:
        messages = record_session(server.ws_url, "hana")
    finally:
        assert server.stop() == 0
    [error] = of_type(messages, "error")
    assert error["code"] == "recording_disabled" and "POSTURE_RECORDING_ENABLED=true" in error["detail"]
    assert len(of_type(messages, "prediction")) >= 2 and not of_type(messages, "recording")
    assert not folder.exists()


def test_only_a_key_with_the_record_scope_may_record(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    env = {"POSTURE_RECORDING_ENABLED": "true", "POSTURE_RECORDING_DIR": str(folder), "POSTURE_API_KEYS_REQUIRED": "1"}
    server = ServerProcess(home, tmp_path / "serve", env=env)
    try:
        keys = ("keys", "create", "--database-url", server.database_url)
        plain = run_cli(*keys, "streams-only", home=home).stdout.strip()
        recorder = run_cli(*keys, "collector", "--scope", "record", home=home).stdout.strip()
        bogus = run_cli(*keys, "other", "--scope", "admin", home=home, check=False)
        listed = json.loads(run_cli("keys", "list", "--json", "--database-url", server.database_url, home=home).stdout)

        refused = record_session(f"{server.ws_url}?token={plain}", "ivan")
        allowed = record_session(f"{server.ws_url}?token={recorder}", "judy")
        entries = wait_for_entries(folder, "judy", 1)
    finally:
        assert server.stop() == 0
    assert bogus.returncode != 0 and "Unknown scope 'admin'" in bogus.stderr and "Traceback" not in bogus.stderr
    assert {k["name"]: k["scopes"] for k in listed} == {"streams-only": [], "collector": ["record"]}
    [error] = of_type(refused, "error")
    assert error["code"] == "recording_forbidden" and "--scope record" in error["detail"]
    assert len(of_type(refused, "prediction")) >= 2 and not of_type(refused, "recording")
    assert not of_type(allowed, "error") and of_type(allowed, "recording")[0]["recording"] is True
    assert [(e["subject"], e["samples"]) for e in entries] == [("judy", 200)]
    assert [e["subject"] for e in manifest(folder)] == ["judy"]  # nothing of ivan's
