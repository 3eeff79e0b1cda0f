"""Shared rendering: one console, one red line per user error, settings from flags."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from features.errors import PostureError
from posture_cli.option_flags import fix_with_flags

console = Console()
error_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(command: F) -> F:
    """Print a PostureError as one red line naming the fix, and exit 1; no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PostureError as err:
            error_console.print(
                f"[bold red]error:[/] {fix_with_flags(err)}", soft_wrap=True, highlight=False, markup=True
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def load_settings(**overrides: Any) -> Any:
    """Settings from ``POSTURE_*`` variables, with the flags that were given on top: all of
    them, the pipelines' and the server's (``ServerSettings`` extends the pipelines' ``Settings``)."""
    from serving.settings import ServerSettings

    return ServerSettings(**{key: value for key, value in overrides.items() if value is not None})


DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def dataset_name(name: str) -> str:
    """A dataset's name is a folder's name under the data dir: ``../x`` wrote outside it."""
    if not DATASET_NAME.fullmatch(name):
        raise PostureError(
            f"--dataset {name!r} is not a dataset name.",
            "use letters, digits, '.', '_' or '-' (up to 100, starting with a letter or digit); "
            "pass --data-dir to put datasets elsewhere.",
        )
    return name


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """``["ax=accX", "ay=accY"]`` -> ``{"ax": "accX", "ay": "accY"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        canonical, sep, source = pair.partition("=")
        if not sep or not canonical or not source:
            raise PostureError(f"--map {pair!r} is not CANONICAL=SOURCE.", "write it like --map ax=accX.")
        mapping[canonical.strip()] = source.strip()
    return mapping
