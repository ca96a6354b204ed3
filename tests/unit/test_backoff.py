from __future__ import annotations

import pytest

from stowage.backoff import doubling_pause

pytestmark = pytest.mark.unit


def test_the_pause_doubles_after_each_failure_up_to_its_cap() -> None:
    pauses = [doubling_pause(2.0, failures, 30.0) for failures in range(1, 7)]
    assert pauses == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_there_is_no_pause_before_a_first_failure() -> None:
    with pytest.raises(ValueError, match="at least one failure"):
        doubling_pause(2.0, 0, 30.0)
