"""One home for the recording tests: a champion trained by `posture retrain` on synthetic wearers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.recording.recording_support import home_with_champion


@pytest.fixture(scope="package")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    return home_with_champion(tmp_path_factory.mktemp("recording") / "home")
