"""Errors a user can act on. Each names what is wrong and how to fix it."""

from __future__ import annotations


class PostureError(Exception):
    """Base for user-actionable errors; the CLI prints ``str(err)`` in one red line."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


class DataError(PostureError):
    """A recording or dataset breaks the data contract (columns, units, time, NaN)."""


class SpecError(PostureError):
    """A recording cannot be windowed with a model's preprocessing spec."""


class HopError(SpecError):
    """The hop is not positive or longer than the window; the CLI names the flag that sets it."""
