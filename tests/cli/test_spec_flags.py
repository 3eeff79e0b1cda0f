"""The CLI adds the flag to a spec error that features/ words in its own terms."""

from __future__ import annotations

import pytest

from features.errors import HopError
from features.spec import WindowSpec
from posture_cli.spec_flags import hop_flag


def test_a_bad_hop_tells_a_train_user_which_flag_to_pass() -> None:
    with pytest.raises(HopError) as err, hop_flag():
        WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=3.0)
    assert str(err.value) == (
        "Hop 3.0 s must be positive and at most the window (2.0 s). "
        "Fix: pass --hop between 1/rate and the window length."
    )
