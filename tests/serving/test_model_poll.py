"""The model poller asks MLflow only when the registry's store has changed: while a SQLite
store is as it was at the last look-up, the model cache's answer stands, so a poll neither
imports MLflow nor opens its store from a thread beside the busy event loop."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

import serving.model_holder as model_holder
from pipelines.registry import connect
from serving.metrics import ServerMetrics
from serving.model_holder import ModelHolder
from serving.settings import ServerSettings


def test_polls_reach_mlflow_only_after_a_registry_write(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)  # the registry is written below: not the shared home's
    settings = ServerSettings(home=home)
    opened: list[str] = []

    def counting_connect(s: ServerSettings) -> object:
        opened.append("connect")
        return connect(s)

    monkeypatch.setattr(model_holder, "connect", counting_connect)
    holder = ModelHolder(settings, "models:/posture@champion", ServerMetrics())

    async def poll_twice() -> list[bool]:
        return [await holder.check_once(), await holder.check_once()]

    asyncio.run(holder.load())  # looks the alias up, and records it in the model cache
    assert asyncio.run(poll_twice()) == [False, False]
    assert opened == []  # the store has not changed: the cache answered

    connect(settings).set_registered_model_tag("posture", "reviewed", "yes")  # any registry write
    assert asyncio.run(poll_twice()) == [False, False]  # the alias still names version 1
    assert opened == ["connect"]  # asked MLflow (once: the client is kept)
    assert holder.current.version == "1"
