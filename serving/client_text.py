"""Text a client sends that the prediction store keeps (session and device ids): checked at the edge.

Every edge (``POST /v1/predict``, the Sensor Logger push, the stream's hello) refuses the
same text, with the same words, before it can reach a store:

- NUL (``\\u0000``): PostgreSQL text cannot hold it; one such session id made a COPY fail and
  every later batch queue behind it;
- a lone surrogate (``"\\ud800x"``): JSON's ``\\u`` escapes can spell one and Python's json
  reads it, but it is no character, cannot be encoded as UTF-8 for either store or for the
  device id's HMAC, and ended a stream session with 1011;
- an empty value, or one over its length (128 characters for ids).

``text_problem`` is the check (the stream protocol words it as a ``bad_hello``);
``ClientId`` is the same check as a pydantic type for request bodies (a 422 naming the field).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

MAX_ID_CHARS = 128
FIX = "send 1-{max_chars} printable characters (UTF-8 text without NUL)"


def text_problem(value: object, max_chars: int = MAX_ID_CHARS) -> str | None:
    """What makes ``value`` unfit to store, with the fix; None when it is fine."""
    if not isinstance(value, str):
        problem = f"must be a string, got {type(value).__name__}"
    elif not value:
        problem = "is empty"
    elif len(value) > max_chars:
        problem = f"has {len(value)} characters, over the limit of {max_chars}"
    elif "\x00" in value:
        problem = f"contains a NUL character (\\u0000) at position {value.index(chr(0))}"
    else:
        try:
            value.encode("utf-8")
            return None
        except UnicodeEncodeError as err:  # only lone surrogates fail: every other code point encodes
            problem = f"contains a lone surrogate (\\u{ord(value[err.start]):04x}) at position {err.start}"
    return f"{problem}; {FIX.format(max_chars=max_chars)}"


def _checked_id(value: Any, info: ValidationInfo) -> Any:
    """Before pydantic's own str check, which words a surrogate as 'unable to parse raw data'."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise PydanticCustomError("client_text", f"{info.field_name} {problem}")
    return value


ClientId = Annotated[str, BeforeValidator(_checked_id), Field(min_length=1, max_length=MAX_ID_CHARS)]
