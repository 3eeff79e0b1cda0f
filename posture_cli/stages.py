"""A rich spinner that shows the stage a flow is in and prints each finished stage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from posture_cli.console import error_console


@contextmanager
def show_stages(title: str, enabled: bool = True) -> Iterator[None]:
    """Render ``pipelines.progress.report`` calls on stderr while the body runs."""
    from pipelines.progress import listening

    if not enabled:
        yield
        return
    started = time.perf_counter()
    current: dict[str, float | str] = {"name": "", "since": started}

    with error_console.status(f"{title}: starting") as status:

        def on_stage(stage: str, detail: str) -> None:
            now = time.perf_counter()
            if stage == "failed":  # the stage under way failed: not 'done'
                error_console.print(f"  [red]failed[/] {current['name']} {detail}", highlight=False)
                current["name"] = ""
                return
            if current["name"]:
                error_console.print(f"  [green]done[/] {current['name']} [dim]{now - float(current['since']):.2f} s[/]")
            current.update(name=stage, since=now)
            status.update(f"{title}: {stage} {detail}")

        with listening(on_stage):
            yield
        if current["name"]:
            error_console.print(
                f"  [green]done[/] {current['name']} [dim]{time.perf_counter() - float(current['since']):.2f} s[/]"
            )
    error_console.print(f"{title} took {time.perf_counter() - started:.1f} s", style="dim")
