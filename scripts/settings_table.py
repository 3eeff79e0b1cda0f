"""The README's settings table, generated from the settings classes (the one source).

    python scripts/settings_table.py          # rewrite the table in README.md
    python scripts/settings_table.py --check  # exit 1 when README.md is out of date

Each package owns its settings: ``pipelines/settings.py`` (``Settings``: where data and
models live, training), ``serving/settings.py`` (``ServerSettings``, which extends it:
the server, its prediction store and its edge) and ``serving/mqtt/settings.py``
(``MqttSettings``, ``POSTURE_MQTT_*``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.settings import Settings  # noqa: E402
from serving.mqtt.settings import MqttSettings  # noqa: E402
from serving.settings import ServerSettings  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
OWNERS = (
    ("`pipelines/settings.py`: data, models, training", Settings, ()),
    ("`serving/settings.py`: the server, its store and edge", ServerSettings, tuple(Settings.model_fields)),
    ("`serving/mqtt/settings.py`: the MQTT bridge and `posture stream --mqtt`", MqttSettings, ()),
)


def variables(prefix: str, name: str, field: FieldInfo) -> str:
    aliases = getattr(field.validation_alias, "choices", None) or [f"{prefix}{name.upper()}"]
    return " / ".join(f"`{alias}`" for alias in aliases)


def default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
        return "`[]`" if value == [] else "derived"
    if field.default is PydanticUndefined or field.default is None:
        return "unset"
    return f"`{field.default}`"


def table() -> str:
    lines = []
    for title, cls, inherited in OWNERS:
        lines += [f"**{title}**", "", "| variable | default | meaning |", "| --- | --- | --- |"]
        for name, field in cls.model_fields.items():
            if name in inherited:
                continue
            meaning = (field.description or "").replace("|", "\\|")
            prefix = cls.model_config.get("env_prefix", "")
            lines.append(f"| {variables(prefix, name, field)} | {default(field)} | {meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def with_table(readme: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}{END}{tail}"


def main() -> int:
    current = README.read_text()
    wanted = with_table(current)
    if "--check" in sys.argv[1:]:
        if current != wanted:
            print("README.md's settings table is out of date. Fix: python scripts/settings_table.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
