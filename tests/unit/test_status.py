"""Conditions: transition times kept while the status holds, transitions detected."""

from __future__ import annotations

import pytest

from stowage.status import READY, desired, is_ready, merge, transitions

pytestmark = pytest.mark.unit

T0 = "2025-01-01T00:00:00Z"
T1 = "2025-01-01T00:05:00Z"


def test_first_condition_is_stamped_with_generation_and_time() -> None:
    [ready] = merge(
        [],
        [desired(READY, False, "SecretMissing", "Secret a/b does not exist")],
        generation=3,
        now=T0,
    )
    assert ready == {
        "type": "Ready",
        "status": "False",
        "reason": "SecretMissing",
        "message": "Secret a/b does not exist",
        "observedGeneration": 3,
        "lastTransitionTime": T0,
    }


def test_transition_time_is_kept_while_the_status_holds_and_moves_when_it_flips() -> None:
    first = merge([], [desired(READY, False, "A", "a")], generation=1, now=T0)
    same_status = merge(first, [desired(READY, False, "B", "b")], generation=2, now=T1)
    assert same_status[0]["lastTransitionTime"] == T0
    assert same_status[0]["reason"] == "B"
    assert same_status[0]["observedGeneration"] == 2
    flipped = merge(first, [desired(READY, True, "Available", "ok")], generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == T1


def test_conditions_of_other_types_are_kept() -> None:
    foreign = {"type": "Mounted", "status": "True", "reason": "X", "message": ""}
    merged = merge([foreign], [desired(READY, True, "Available", "")], generation=1, now=T0)
    assert foreign in merged
    assert [c["type"] for c in merged] == ["Ready", "Mounted"]


def test_transitions_report_only_what_changed() -> None:
    current = merge([], [desired(READY, True, "Available", "ok")], generation=1, now=T0)
    assert transitions(current, [desired(READY, True, "Available", "ok")]) == []
    changed = desired(READY, False, "CSIDriverMissing", "CSIDriver x is not installed")
    assert transitions(current, [changed]) == [changed]
    assert is_ready({"conditions": current})
    assert not is_ready({"conditions": merge(current, [changed], generation=2, now=T1)})
    assert not is_ready(None)
