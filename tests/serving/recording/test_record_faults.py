"""A full disk while recording, injected where the file is made durable: the session reports
it as an error event and goes on predicting, leaves no half file, and writes the part once the
disk has room again. The real session core (real model, micro-batcher, files), no transport."""

from __future__ import annotations

import asyncio
import errno
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipelines.settings import Settings
from pipelines.synthetic import SubjectProfile, generate_segment
from serving.model_holder import load_served
from serving.recording import files
from serving.recording.recorder import Recorder
from serving.stream.events import Prediction, RecordingState, Rejected
from serving.stream.protocol import Hello, LabelChange, Samples
from serving.stream.services import Peer
from serving.stream.session import StreamSession
from tests.serving.recording.recording_support import manifest, read, recorded_files
from tests.serving.stream.test_session_core import ListOutlet, MemoryStore, decoded, services

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")


def samples(posture: str, seconds: float, t_start: float, seed: int) -> list[Samples]:
    rng = np.random.default_rng(seed)
    data = generate_segment(posture, SubjectProfile.random(rng, "disk"), seconds, 50.0, rng).astype("<f4")
    return [Samples(data[i : i + 25], t_start + i / 50.0) for i in range(0, len(data), 25)]


def test_a_full_disk_is_an_error_event_and_the_session_goes_on_predicting(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = load_served("models:/posture/1", Settings(home=home))
    folder = tmp_path / "incoming"
    outlet = ListOutlet()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    async def scenario() -> None:
        recorder = Recorder(True, folder, 10_000, "anon", 0.5)
        session = StreamSession(replace(services(served, MemoryStore()), recorder=recorder), outlet, Peer("ws", None))
        session.open()
        await session.receive(decoded(Hello("dev-1", 50.0, CHANNELS, None, {"label": "sitting", "subject": "erin"})))
        for frame in samples("sitting", 5.0, 0.0, seed=1):
            await session.receive(decoded(frame))
        monkeypatch.setattr(files.os, "fsync", disk_full)
        await session.receive(decoded(LabelChange("walking")))  # writing the sitting part fails
        before = sum(isinstance(e, Prediction) for e in outlet.events)
        for frame in samples("walking", 5.0, 5.0, seed=2):  # not recorded: the recording stopped
            await session.receive(decoded(frame))
        assert sum(isinstance(e, Prediction) for e in outlet.events) >= before + 4  # still predicting
        assert not list(folder.rglob("*.parquet")) and not list(folder.rglob(".*.tmp")) and not manifest(folder)
        monkeypatch.undo()  # room again: the next label message writes the kept part and records on
        await session.receive(decoded(LabelChange("walking")))
        for frame in samples("walking", 3.0, 10.0, seed=3):
            await session.receive(decoded(frame))
        await session.close(1000)
        await session.finish()

    asyncio.run(scenario())
    [failure] = [e for e in outlet.events if isinstance(e, Rejected)]
    assert failure.code == "recording_failed" and "No space left on device" in failure.detail
    states = [e for e in outlet.events if isinstance(e, RecordingState)]
    assert [(s.active, s.label) for s in states] == [(True, "sitting"), (False, None), (True, "walking")]
    found = recorded_files(folder, "erin")
    assert [len(read(p)) for p in found["sitting"]] == [250] and [len(read(p)) for p in found["walking"]] == [150]
    assert [(e["label"], e["samples"]) for e in manifest(folder)] == [("sitting", 250), ("walking", 150)]
