"""The flags that fix a spec error: features/ names the problem in its own terms, the CLI the flag."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from features.errors import HopError


@contextmanager
def hop_flag() -> Iterator[None]:
    """Re-raise a bad hop with the fix a user of ``train`` or ``retrain`` types: ``--hop``."""
    try:
        yield
    except HopError as err:
        raise HopError(err.problem, "pass --hop between 1/rate and the window length.") from None
