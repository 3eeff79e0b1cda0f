"""The README's settings table is generated from the settings classes and kept current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.settings import Settings
from serving.mqtt.settings import MqttSettings
from serving.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_settings_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "settings_table.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_setting_is_documented_once_by_its_owner() -> None:
    readme = (ROOT / "README.md").read_text()
    server_only = set(ServerSettings.model_fields) - set(Settings.model_fields)
    assert server_only and not server_only & set(Settings.model_fields)
    for cls, prefix in ((ServerSettings, "POSTURE_"), (MqttSettings, "POSTURE_MQTT_")):
        for name, field in cls.model_fields.items():
            assert field.description, f"{name} has no description: the README table would say nothing"
            assert readme.count(f"`{prefix}{name.upper()}`") >= 1, name
    # The server's own fields live in serving/settings.py, not in the pipelines' class.
    assert {"host", "spool_dir", "redis_url", "max_frame_bytes"} <= server_only
    assert {"home", "model_name", "trees", "database_url"} <= set(Settings.model_fields)
