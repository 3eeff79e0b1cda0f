"""How ``posture stream`` shows itself: a rich live view, or JSON lines for pipes; and the summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from posture_cli.stream.stats import StreamStats

REFRESH_PER_S = 4
BAR_WIDTH = 30
PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")


def label_color(label: str, classes: list[str]) -> str:
    return PALETTE[classes.index(label) % len(PALETTE)] if label in classes else "white"


def render(stats: StreamStats) -> RenderableType:
    """The live panel: current label, probability bars, history, then the counters."""
    classes = list(stats.model.get("classes") or [])
    body: list[RenderableType] = [_current(stats, classes), _bars(stats, classes), _history(stats, classes)]
    body.append(Text(_status_line(stats), style="dim"))
    body.append(Text(_fault_line(stats), style="yellow" if stats.dropped or stats.errors or stats.malformed else "dim"))
    if stats.recording is not None:
        body.append(_recording_line(stats.recording))
    if stats.last_error:
        body.append(Text(f"last error: {stats.last_error}", style="red"))
    if stats.last_malformed:
        body.append(Text(f"last malformed line: {stats.last_malformed!r}", style="yellow"))
    title = f"posture stream · {stats.device} → {stats.url}"
    return Panel(Group(*body), title=title, title_align="left", border_style="blue")


def _current(stats: StreamStats, classes: list[str]) -> RenderableType:
    if stats.last is None:
        return Text(f"waiting for the first window… ({stats.state})", style="dim")
    label = stats.last.get("smoothed_label") or stats.last["label"]
    confidence = (stats.last.get("smoothed_probabilities") or stats.last["probabilities"]).get(label, 0.0)
    text = Text()
    text.append(f" {label.upper()} ", style=f"bold reverse {label_color(label, classes)}")
    text.append(f"  {confidence:.0%}", style="bold")
    text.append(f"   raw: {stats.last['label']} {stats.last['confidence']:.0%}", style="dim")
    model = stats.model
    version = stats.last.get("model_version") or model.get("version", "?")
    text.append(f"   model {model.get('name', '?')} v{version}", style="dim")
    return text


def _bars(stats: StreamStats, classes: list[str]) -> RenderableType:
    table = Table.grid(padding=(0, 1))
    probabilities = (stats.last or {}).get("smoothed_probabilities") or {}
    for label in classes:
        p = float(probabilities.get(label, 0.0))
        filled = int(round(p * BAR_WIDTH))
        bar = Text("█" * filled, style=label_color(label, classes)).append("░" * (BAR_WIDTH - filled), style="dim")
        table.add_row(Text(label), bar, Text(f"{p:5.2f}"))
    return table


def _history(stats: StreamStats, classes: list[str]) -> RenderableType:
    text = Text("history: ", style="dim")
    for label in stats.history:
        text.append(label[:5] + " ", style=label_color(label, classes))
    return text


def _status_line(stats: StreamStats) -> str:
    p50, p95 = stats.rtt_percentile(50), stats.rtt_percentile(95)
    rtt = f"rtt {p50:.0f} ms (p95 {p95:.0f})" if p50 is not None and p95 is not None else "rtt –"
    session = (stats.session_id or "–")[:8]
    return (
        f"{stats.state} · session {session} · {stats.frames_per_s:.1f} frames/s · {rtt} · "
        f"{stats.predictions} predictions · {stats.samples} samples sent"
    )


def _fault_line(stats: StreamStats) -> str:
    return (
        f"reconnects {stats.reconnects} · dropped {stats.dropped} · buffered {stats.pending} · "
        f"errors {stats.errors} · malformed lines {stats.malformed}"
    )


def _recording_line(recording: dict[str, Any]) -> Text:
    """``● recording sitting (alice): sitting 12 s`` while the server records; what it wrote after."""
    seconds = ", ".join(f"{label} {s:.0f} s" for label, s in recording["seconds"].items()) or "nothing yet"
    if recording["recording"]:
        return Text(f"● recording {recording['label']} ({recording['subject']}): {seconds}", style="bold red")
    return Text(f"recorded ({recording['subject']}): {seconds} in {recording['files']} file(s)", style="dim")


def live_view(stats_source: Callable[[], StreamStats], console: Console) -> Live:
    """A Live that re-renders the stats REFRESH_PER_S times a second (``stats_source`` syncs them first)."""
    return Live(
        get_renderable=lambda: render(stats_source()),
        console=console,
        refresh_per_second=REFRESH_PER_S,
        transient=False,
    )


def json_listener(message: dict[str, Any]) -> None:
    """--json: one line per prediction on stdout; server errors as lines on stderr."""
    stream = sys.stdout if message.get("type") == "prediction" else sys.stderr
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="stream summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rtt = summary["rtt_ms_p50"]
    for name, value in (
        ("device", summary["device"]),
        ("duration", f"{summary['duration_s']:.1f} s"),
        ("frames sent", f"{summary['frames']} ({summary['frames_per_s']:.1f}/s)"),
        ("samples sent", summary["samples"]),
        ("predictions", summary["predictions"]),
        ("errors", summary["errors"]),
        ("reconnects", summary["reconnects"]),
        ("dropped samples", summary["dropped_samples"]),
        ("malformed lines", summary["malformed_lines"]),
        ("round trip p50 / p95", f"{rtt} / {summary['rtt_ms_p95']} ms" if rtt is not None else "–"),
    ):
        table.add_row(name, str(value))
    if summary["last_disconnect"]:
        table.add_row("last disconnect", summary["last_disconnect"])
    for label, seconds in summary["seconds_per_label"].items():
        table.add_row(f"time {label}", f"{seconds:.0f} s")
    for label, seconds in (summary["recorded_s"] or {}).items():
        table.add_row(f"recorded {label}", f"{seconds:.1f} s in {summary['recorded_files']} file(s) in all")
    return table
