"""Fixtures of the Docker tests: the image built once per session from the local Debian base,
and a model trained by `posture train` where containers can read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.docker_support import IMAGE, build_image, local_base, shared_folder, trained_model_home


@pytest.fixture(scope="session")
def base_image() -> str:
    return local_base()


@pytest.fixture(scope="session")
def image(base_image: str) -> str:
    build_image(base_image, IMAGE)
    return IMAGE


@pytest.fixture(scope="session")
def model_home(prefect_api: str) -> Iterator[Path]:
    with shared_folder("posture-model-") as folder:
        yield trained_model_home(folder)
