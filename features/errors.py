"""Errors a user can act on. Each names what is wrong and how to fix it, in the terms of the
package that raises it: ``options`` names the settings that fix it (``source_rate_hz``,
``acc_units``...), and the CLI adds the flag that sets each one (posture_cli/option_flags.py),
so a scheduled flow's log never tells anyone to type a flag."""

from __future__ import annotations


class PostureError(Exception):
    """Base for user-actionable errors; the CLI prints ``str(err)`` in one red line."""

    def __init__(self, problem: str, fix: str = "", options: tuple[str, ...] = ()) -> None:
        self.problem = problem
        self.fix = fix
        self.options = options  # the settings that fix it, by name
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


class DataError(PostureError):
    """A recording or dataset breaks the data contract (columns, units, time, NaN)."""


class SpecError(PostureError):
    """A recording cannot be windowed with a model's preprocessing spec."""


class HopError(SpecError):
    """The hop is not positive or longer than the window."""
