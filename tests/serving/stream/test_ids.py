"""Session ids from the pooled random source: uuid4's format, never repeated, not shared with a forked child."""

from __future__ import annotations

import os
import string

from serving.stream.ids import IDS_PER_DRAW, random_id


def test_ids_are_32_hex_digits_and_never_repeat_across_draws() -> None:
    ids = [random_id() for _ in range(IDS_PER_DRAW * 4 + 7)]
    assert all(len(i) == 32 and set(i) <= set(string.hexdigits.lower()) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_ids_of_its_own() -> None:
    random_id()  # the parent's pool now holds ids it has not handed out
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next ids, to the parent, and out (never back into pytest)
        try:
            os.write(write, "".join(random_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    child_ids = {text[i : i + 32] for i in range(0, len(text), 32)}
    parent_ids = {random_id() for _ in range(8)}
    assert len(child_ids) == 8
    assert not child_ids & parent_ids
