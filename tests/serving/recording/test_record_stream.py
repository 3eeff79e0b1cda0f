"""Recorded WebSocket sessions on the real `posture serve`, landing as real files that the real
`posture retrain` takes in: the label change splits the files, bad record requests get errors
and the session lives on, SIGTERM writes what an open session holds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from tests.conftest import run_cli
from tests.serving.recording.recording_support import (
    collect,
    manifest,
    of_type,
    posture_frames,
    read,
    recorded_files,
    wait_for_entries,
)
from tests.serving.serving_support import ServerProcess


@pytest.fixture(scope="module")
def incoming(home: Path) -> Path:
    return home / "data" / "incoming"


@pytest.fixture(scope="module")
def server(home: Path, incoming: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "POSTURE_RECORDING_ENABLED": "true",
        "POSTURE_RECORDING_DIR": str(incoming),
        "POSTURE_RECORDING_MAX_SAMPLES": "1000",  # 20 s at 50 Hz: a longer label runs into a second file
    }
    server = ServerProcess(home, tmp_path_factory.mktemp("serve"), env=env)
    yield server
    server.stop()


async def conversation(url: str, script: list[Any]) -> list[dict[str, Any]]:
    """Send each item (a dict as JSON, a str as is), then collect what the server said."""
    async with websockets.connect(url) as ws:
        for item in script:
            await ws.send(item if isinstance(item, str) else json.dumps(item))
            await asyncio.sleep(0.002)
        return await collect(ws)


def test_a_recorded_session_lands_as_files_split_by_label_that_retrain_takes_in(
    server: ServerProcess, home: Path, incoming: Path
) -> None:
    hello = {"type": "hello", "device_id": "phone-7", "record": {"label": "sitting", "subject": "alice"}}
    script: list[Any] = [hello, *posture_frames("sitting", 24.0, seed=11)]  # 1,200 samples: 1,000 + 200
    script += [{"type": "label", "label": "walking"}, *posture_frames("walking", 16.0, seed=12, t_start=24.0)]
    script += [{"type": "label", "label": None}, *posture_frames("lying", 6.0, seed=13, t_start=40.0)]
    messages = asyncio.run(conversation(server.ws_url, script))

    assert not of_type(messages, "error"), of_type(messages, "error")
    assert len(of_type(messages, "prediction")) >= 40  # predictions all along, recording or not
    states = of_type(messages, "recording")
    assert (states[0]["recording"], states[0]["label"], states[0]["subject"]) == (True, "sitting", "alice")
    assert (states[-1]["recording"], states[-1]["label"]) == (False, None)
    assert states[-1]["seconds"] == {"sitting": 24.0, "walking": 16.0} and states[-1]["files"] == 3

    files = recorded_files(incoming, "alice")
    assert sorted(files) == ["sitting", "walking"] and [len(files["sitting"]), len(files["walking"])] == [2, 1]
    sitting = [read(p) for p in files["sitting"]]
    walking = read(files["walking"][0])
    assert [len(f) for f in sitting] == [1000, 200] and len(walking) == 800  # lying was not recorded
    assert list(walking.columns) == ["timestamp", "ax", "ay", "az", "gx", "gy", "gz", "label", "subject", "recording"]
    times = np.concatenate([f["timestamp"].to_numpy() for f in [*sitting, walking]])
    assert np.allclose(times, np.arange(2000) / 50.0)  # one unbroken timeline on the model's 50 Hz grid
    assert {tuple(f[["label", "subject"]].drop_duplicates().iloc[0]) for f in sitting} == {("sitting", "alice")}
    assert set(walking["label"]) == {"walking"} and len({f["recording"].iloc[0] for f in sitting}) == 2

    entries = manifest(incoming)
    assert [(e["label"], e["samples"], e["subject"], e["source"]) for e in entries] == [
        ("sitting", 1000, "alice", "ws"),
        ("sitting", 200, "alice", "ws"),
        ("walking", 800, "alice", "ws"),
    ]
    assert entries[2]["t_start"] == 24.0 and entries[2]["t_end"] == pytest.approx(39.98)
    assert len({e["device"] for e in entries}) == 1 and entries[0]["device"] != "phone-7"  # a pseudonym
    assert all((incoming / e["file"]).is_file() for e in entries)
    assert not list(incoming.rglob(".*.tmp"))

    outcome = json.loads(run_cli("retrain", "--trees", "3", "--margin", "0", "--json", home=home).stdout)
    assert outcome["status"] in ("promoted", "kept champion") and int(outcome["version"]) >= 2, outcome
    dataset = json.loads((home / "data/datasets/sample/manifest.json").read_text())
    batch = dataset["batches"][-1]
    assert sorted(batch["files"]) == sorted(e["file"] for e in entries)
    assert not recorded_files(incoming, "alice")  # filed under processed/ by the retrain
    assert len(list((home / "data/processed").rglob("alice/*/*.parquet"))) == 3


@pytest.mark.parametrize(
    ("first", "code", "detail"),
    [
        ({"type": "hello", "record": {"label": "dancing", "subject": "bob"}}, "bad_record", "not one of the model"),
        ({"type": "hello", "record": {"label": "sitting"}}, "bad_record", "subject"),
        ({"type": "hello", "record": {"label": "sitting", "subject": "../etc"}}, "bad_record", "subject"),
        ({"type": "hello", "record": "sitting"}, "bad_record", "must be an object"),
        ({"type": "hello", "record": {"label": "sitting", "subject": "bob", "x": 1}}, "bad_record", "only label"),
        ({"type": "label", "label": None}, "bad_label", "does not record"),
        ({"type": "label"}, "bad_label", "needs"),
        ({"type": "label", "label": "sitting"}, "bad_record", "subject"),
    ],
)
def test_a_bad_record_request_gets_an_error_and_the_session_goes_on_predicting(
    server: ServerProcess, incoming: Path, first: dict[str, Any], code: str, detail: str
) -> None:
    before = manifest(incoming)
    messages = asyncio.run(conversation(server.ws_url, [first, *posture_frames("standing", 5.0, seed=3)]))
    errors = of_type(messages, "error")
    assert [e["code"] for e in errors] == [code] and detail in errors[0]["detail"], errors
    assert len(of_type(messages, "prediction")) >= 3 and not of_type(messages, "recording")
    assert manifest(incoming) == before and not recorded_files(incoming, "bob")


def test_a_label_message_starts_recording_mid_session(server: ServerProcess, incoming: Path) -> None:
    script: list[Any] = [*posture_frames("lying", 4.0, seed=5)]
    script += [{"type": "label", "label": "lying", "subject": "carol"}, *posture_frames("lying", 6.0, 6, 4.0)]
    messages = asyncio.run(conversation(server.ws_url, script))
    assert not of_type(messages, "error")
    assert [e["samples"] for e in wait_for_entries(incoming, "carol", 1)] == [300]
    [path] = recorded_files(incoming, "carol")["lying"]
    frame = read(path)
    assert len(frame) == 300 and frame["timestamp"].iloc[0] == 4.0


def test_posture_stream_record_lands_as_a_labelled_file(server: ServerProcess, home: Path, incoming: Path) -> None:
    args = ("--device", "sim:lying", "--speed", "4", "--duration", "4", "--json", "--device-id", "cli-1")
    done = run_cli(
        "stream", "--url", server.ws_url, *args, "--record", "--label", "lying", "--subject", "frank", home=home
    )
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    [entry] = wait_for_entries(incoming, "frank", 1)
    assert summary["recorded_files"] == 1 and summary["recorded_s"] == {"lying": entry["samples"] / 50.0}
    assert entry["samples"] >= 300 and entry["label"] == "lying"  # ~4 s at 4x speed: ~16 s of samples
    frame = read(incoming / entry["file"])
    assert len(frame) == entry["samples"] and set(frame["subject"]) == {"frank"}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--record", "--label", "lying"), "--record needs --label and --subject"),
        (("--label", "lying"), "add --record"),
        (("--record", "--label", "dancing", "--subject", "gus"), "bad_record"),
    ],
)
def test_posture_stream_record_refused_is_one_red_line(
    server: ServerProcess, home: Path, args: tuple[str, ...], problem: str
) -> None:
    done = run_cli("stream", "--url", server.ws_url, "--device", "sim", "--json", *args, home=home, check=False)
    assert done.returncode != 0 and problem in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_sigterm_writes_what_an_open_recording_holds(server: ServerProcess, incoming: Path) -> None:
    """Last in this module: it stops the module's server."""

    async def session() -> list[dict[str, Any]]:
        async with websockets.connect(server.ws_url) as ws:
            await ws.send(json.dumps({"type": "hello", "record": {"label": "standing", "subject": "dave"}}))
            for frame in posture_frames("standing", 7.0, seed=8):
                await ws.send(frame)
            got = await collect(ws, quiet_s=0.5)
            assert server.stop() == 0
            return got

    messages = asyncio.run(session())
    assert of_type(messages, "recording")[0]["recording"] is True
    [path] = recorded_files(incoming, "dave")["standing"]
    assert len(read(path)) == 350
    assert [e["samples"] for e in manifest(incoming) if e["subject"] == "dave"] == [350]
