"""The reader flags that ingest, predict and stream share, declared once.

A flag's name, type and default live here, the defaults taken from ``ReadOptions`` (the one
declaration of what the readers accept), and ``read_options`` turns the flags into one.
Each command words the help for its own users, so the help text is what it passes in.
Only ``pipelines.read_options`` is imported, which imports nothing heavy: ``--help`` stays
instant.
"""

from __future__ import annotations

from typing import Any

import typer

from pipelines.read_options import ReadOptions
from posture_cli.console import parse_mapping

DEFAULTS = ReadOptions()


def column_map(help: str) -> Any:
    """``--map CANONICAL=SOURCE`` (repeatable): ``ReadOptions.column_map``."""
    return typer.Option(None, "--map", help=help)


def acc_units(help: str) -> Any:
    """``--acc-units``: ``ReadOptions.acc_units``."""
    return typer.Option(DEFAULTS.acc_units, "--acc-units", help=help)


def gyro_units(help: str) -> Any:
    """``--gyro-units``: ``ReadOptions.gyro_units``."""
    return typer.Option(DEFAULTS.gyro_units, "--gyro-units", help=help)


def time_units(help: str) -> Any:
    """``--time-units``: ``ReadOptions.time_units``."""
    return typer.Option(DEFAULTS.time_units, "--time-units", help=help)


def ts_rate(help: str) -> Any:
    """``--ts-rate``: ``ReadOptions.rate_hz``, named for the .ts files that need it."""
    return typer.Option(DEFAULTS.rate_hz, "--ts-rate", help=help)


def read_options(column_map: list[str] | None = None, ts_rate: float | None = None, **fields: Any) -> ReadOptions:
    """The flags as ``ReadOptions``; a bad value fails here, in one red line, before any I/O."""
    return ReadOptions(column_map=parse_mapping(column_map), rate_hz=ts_rate, **fields)
