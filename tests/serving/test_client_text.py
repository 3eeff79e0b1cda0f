"""serving/client_text.py: the one check of stored client text, as each edge words it."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError

from serving.client_text import text_problem
from serving.http.routes import parse_predict_body
from serving.stream.protocol import FrameError, parse_text

FIX = "send 1-128 printable characters (UTF-8 text without NUL)"


@pytest.mark.parametrize(
    "value, problem",
    [
        ("a\x00b", "contains a NUL character (\\u0000) at position 1"),
        ("\ud800x", "contains a lone surrogate (\\ud800) at position 0"),
        ("ok\udfff", "contains a lone surrogate (\\udfff) at position 2"),
        ("x" * 129, "has 129 characters, over the limit of 128"),
        ("", "is empty"),
        (7, "must be a string, got int"),
    ],
)
def test_text_no_store_can_hold_is_named_with_the_fix(value: object, problem: str) -> None:
    assert text_problem(value) == f"{problem}; {FIX}"


@pytest.mark.parametrize("value", ["phone-7", "x" * 128, "é", "😀", "\U0001f600" * 64, "a\tb"])
def test_text_both_stores_hold_passes(value: str) -> None:
    assert text_problem(value) is None


def test_the_stream_hello_refuses_it_as_bad_hello() -> None:
    for raw in (r'"a\u0000b"', r'"\ud800x"', '"' + "d" * 129 + '"', '""', "7"):
        with pytest.raises(FrameError) as refused:
            parse_text('{"type": "hello", "device_id": %s}' % raw, 6, 1000)
        assert refused.value.code == "bad_hello" and refused.value.detail.startswith("device_id ")
    assert parse_text(json.dumps({"type": "hello", "device_id": "phone-😀"}), 6, 1000).device_id == "phone-😀"


def test_predict_names_the_field_of_a_lone_surrogate_its_json_parser_refuses() -> None:
    """pydantic's JSON parser refuses ``"\\ud800"`` (RFC 8259 allows it) with only a position;
    the body is read again so that the 422 names the field."""
    with pytest.raises(RequestValidationError) as refused:
        parse_predict_body(rb'{"samples": [[1, 2, 3, 4, 5, 6]], "device_id": "\ud800x"}')
    (error,) = refused.value.errors()
    assert error["loc"] == ("body", "device_id") and "lone surrogate" in error["msg"]
    for not_json in (b"\xff", b'{"samples": [[NaN', b"[" * 5000):
        with pytest.raises(RequestValidationError) as refused:
            parse_predict_body(not_json)
        assert [e["loc"] for e in refused.value.errors()] == [("body",)]
