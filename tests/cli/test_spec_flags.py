"""features/ and pipelines/ word their errors in their own terms; the CLI adds the flag of the
command that failed, and only when that command has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click import Context  # the Click that Typer runs commands with
from typer.main import get_command

from features.errors import HopError
from features.spec import WindowSpec
from posture_cli.option_flags import OPTION_FLAGS, fix_with_flags
from tests.conftest import run_cli


def test_a_spec_error_names_the_setting_not_a_flag() -> None:
    with pytest.raises(HopError) as err:
        WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=3.0)
    assert "--" not in str(err.value) and err.value.options == ("hop_s",)


def _command(flag: str) -> Any:
    """A one-option Typer command, as Typer's Click sees it."""
    app = typer.Typer()

    @app.command()
    def run(value: float = typer.Option(1.0, flag)) -> None: ...

    return get_command(app)


def test_the_flag_is_added_only_where_the_command_has_it() -> None:
    err = HopError("Hop 3.0 s must be positive.", "use a hop up to the window length.", ("hop_s",))
    with Context(_command("--hop")):
        assert fix_with_flags(err) == "Hop 3.0 s must be positive. Fix: use a hop up to the window length (--hop)."
    with Context(_command("--ts-rate")):  # predict has no --hop: the fix stands in its own terms
        assert fix_with_flags(err) == str(err)
    assert fix_with_flags(err) == str(err)  # outside any command: a flow's log


def test_train_with_a_bad_hop_tells_which_flag_to_pass(posture_home: Path) -> None:
    run_cli("ingest", "--sample", home=posture_home)
    result = run_cli("train", "--hop", "3", home=posture_home, check=False)
    assert result.returncode == 1
    assert "Hop 3.0 s must be positive and at most the window (2.0 s)." in result.stderr
    assert "Fix: use a hop between one sample (1/rate) and the window length (--hop)." in result.stderr


def test_every_flag_named_exists_on_some_command() -> None:
    from posture_cli.main import app

    flags: set[str] = set()
    pending = [get_command(app)]
    while pending:
        command = pending.pop()
        flags |= {flag for param in command.params for flag in param.opts}
        pending += list(getattr(command, "commands", {}).values())
    assert set(OPTION_FLAGS.values()) <= flags, set(OPTION_FLAGS.values()) - flags
