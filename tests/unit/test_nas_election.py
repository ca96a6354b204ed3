"""Who may hold a NASShare's Lease (pure decisions; the Lease itself is tested against a real
API server in tests/integration/test_nas_election.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stowage.nas.election import LeaseRecord, may_take, micro_time

pytestmark = pytest.mark.unit


def test_a_free_or_released_lease_is_taken_at_once() -> None:
    assert may_take(LeaseRecord(holder="", renewed="", duration=10), "pod-b", 0)


def test_the_holder_keeps_its_lease() -> None:
    assert may_take(LeaseRecord(holder="pod-a", renewed="t1", duration=10), "pod-a", 0)


def test_a_standby_waits_for_the_full_duration_of_silence() -> None:
    held = LeaseRecord(holder="pod-a", renewed="t1", duration=10)
    assert not may_take(held, "pod-b", 9.9)
    assert may_take(held, "pod-b", 10)


def test_times_are_written_as_the_api_s_micro_time() -> None:
    moment = datetime(2026, 11, 26, 8, 5, 3, 120, tzinfo=UTC)
    assert micro_time(moment) == "2026-11-26T08:05:03.000120Z"


def test_a_record_is_read_from_the_lease_spec() -> None:
    lease = {"spec": {"holderIdentity": "pod-a", "renewTime": "t", "leaseDurationSeconds": 7}}
    assert LeaseRecord.of(lease) == LeaseRecord("pod-a", "t", 7)
    assert LeaseRecord.of({"spec": {}}) == LeaseRecord("", "", 10)
