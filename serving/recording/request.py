"""What a session asks to record, checked at the edge: the label, the subject, the permission.

A label must be one of the served model's classes: retrain refuses a new label (it would
change the model's label set) and would then take in nothing at all. A subject becomes a
folder name in the incoming layout (``SUBJECT/LABEL/file``), so it is a plain name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from serving.store.api_keys import RECORD_SCOPE  # the key scope a recording session needs where keys are required

SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
UNSAFE_LABEL = re.compile(r"[/\\\x00]|^\.\.?$")


class RecordRefused(Exception):
    """A record request the server turns down; the session goes on without recording."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class RecordRequest:
    label: str
    subject: str


def parse_record(raw: Any, classes: tuple[str, ...]) -> RecordRequest:
    """``{"label": ..., "subject": ...}`` as sent, checked against the served model's classes."""
    if not isinstance(raw, dict):
        raise RecordRefused("bad_record", 'record must be an object: {"label": "sitting", "subject": "alice"}')
    unknown = sorted(set(raw) - {"label", "subject"})
    if unknown:
        raise RecordRefused("bad_record", f"record takes only label and subject, not {', '.join(map(repr, unknown))}")
    return RecordRequest(check_label(raw.get("label"), classes), check_subject(raw.get("subject")))


def check_label(label: Any, classes: tuple[str, ...]) -> str:
    if not isinstance(label, str) or label not in classes:
        raise RecordRefused(
            "bad_record",
            f"record label {label!r:.80} is not one of the model's classes {list(classes)}; pick one of them",
        )
    if UNSAFE_LABEL.search(label):  # a folder name in the incoming layout
        raise RecordRefused("bad_record", f"the class {label!r} cannot name a folder; it cannot be recorded")
    return label


def check_subject(subject: Any) -> str:
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise RecordRefused(
            "bad_record",
            f"record subject {subject!r:.80} must be 1-64 letters, digits, '_', '.' or '-' "
            "(starting with a letter or digit), e.g. 'alice'",
        )
    return subject


def check_allowed(enabled: bool, scopes: frozenset[str] | None, key_name: str | None) -> None:
    """Recording on, and (where keys are required) the caller's key carries the record scope."""
    if not enabled:
        raise RecordRefused(
            "recording_disabled",
            "recording is off on this server; start it with POSTURE_RECORDING_ENABLED=true to record sessions",
        )
    if scopes is not None and RECORD_SCOPE not in scopes:
        raise RecordRefused(
            "recording_forbidden",
            f"API key {key_name!r} lacks the {RECORD_SCOPE!r} scope; use a key made with "
            f"`posture keys create NAME --scope {RECORD_SCOPE}`",
        )
