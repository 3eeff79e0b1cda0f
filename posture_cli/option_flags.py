"""The flags that set the options an error names: pipelines and features word their errors in
their own terms (``PostureError.options``), and the CLI adds the flag a user types, when the
command that failed has it (``predict`` has no ``--hop``: a model's spec is not a flag there)."""

from __future__ import annotations

from typer._click.globals import get_current_context  # Typer's own (vendored) Click, as in main.py

from features.errors import PostureError

OPTION_FLAGS = {
    "source_rate_hz": "--ts-rate",
    "rate_hz": "--rate",
    "acc_units": "--acc-units",
    "gyro_units": "--gyro-units",
    "time_units": "--time-units",
    "channel_map": "--map",
    "max_gap_s": "--max-gap",
    "window_s": "--window",
    "hop_s": "--hop",
    "channels": "--channels",
    "label": "--label",
    "dataset": "--dataset",
    "folds": "--folds",
    "interval_s": "--interval",
    "cron": "--cron",
    "runner": "--runner",
    "dask_address": "--dask-address",
}


def fix_with_flags(err: PostureError) -> str:
    """``str(err)`` with the flags of the running command that set the options it names."""
    flags = [flag for flag in (OPTION_FLAGS.get(option) for option in err.options) if flag in _command_flags()]
    if not flags or not err.fix:
        return str(err)
    return f"{err.problem} Fix: {err.fix.rstrip('.')} ({', '.join(flags)})."


def _command_flags() -> set[str]:
    context = get_current_context(silent=True)
    if context is None:
        return set()
    return {flag for param in context.command.params for flag in param.opts}
