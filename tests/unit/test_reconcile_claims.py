"""Which claims the provisioner takes, and the retry queue it uses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stowage.reconcilers.claims import needs_volume, volume_name, waits_for_consumer
from stowage.reconcilers.retry import Retrier, Retry

pytestmark = pytest.mark.unit


def claim(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": "data",
            "namespace": "team",
            "uid": "0b1c",
            "annotations": {"volume.kubernetes.io/storage-provisioner": "stowage.io/provisioner"},
        },
        "spec": {"storageClassName": "files"},
        "status": {"phase": "Pending"},
    }
    for key, value in overrides.items():
        body[key] = {**body[key], **value}
    return body


def test_claims_handed_to_us_and_still_pending_need_a_volume() -> None:
    assert needs_volume(claim())
    legacy = claim(
        metadata={
            "annotations": {
                "volume.beta.kubernetes.io/storage-provisioner": "stowage.io/provisioner"
            }
        }
    )
    assert needs_volume(legacy)
    assert not needs_volume(
        claim(
            metadata={
                "annotations": {"volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"}
            }
        )
    )
    assert not needs_volume(claim(spec={"volumeName": "pvc-0b1c"}))
    assert not needs_volume(claim(status={"phase": "Bound"}))
    assert not needs_volume(claim(metadata={"deletionTimestamp": "2025-01-01T00:00:00Z"}))
    assert volume_name(claim()) == "pvc-0b1c"


def test_wait_for_first_consumer_until_a_node_is_selected() -> None:
    wffc = {"volumeBindingMode": "WaitForFirstConsumer"}
    assert waits_for_consumer(claim(), wffc)
    selected = claim(metadata={"annotations": {"volume.kubernetes.io/selected-node": "n1"}})
    assert not waits_for_consumer(selected, wffc)
    assert not waits_for_consumer(claim(), {"volumeBindingMode": "Immediate"})


def test_retrier_backs_off_and_forgets() -> None:
    async def scenario() -> list[int]:
        retrier = Retrier(max_delay=0.4, tick=0.01)
        calls: list[int] = []

        async def attempt() -> Retry | None:
            calls.append(len(calls))
            return Retry("NotYet", base_delay=0.05) if len(calls) < 3 else None

        serving = asyncio.create_task(retrier.serve())
        await retrier.run_now("claim/a", attempt)
        assert retrier.waiting() == ["claim/a"]
        await asyncio.sleep(0.5)  # 0.05 + 0.1 s of backoff, then success
        assert retrier.waiting() == []
        await retrier.run_now("claim/b", attempt)  # succeeds at once now
        serving.cancel()
        return calls

    assert asyncio.run(scenario()) == [0, 1, 2, 3]


def test_forgotten_keys_are_not_retried() -> None:
    async def scenario() -> int:
        retrier = Retrier(tick=0.01)
        calls = 0

        async def attempt() -> Retry | None:
            nonlocal calls
            calls += 1
            return Retry("NotYet", base_delay=0.02)

        serving = asyncio.create_task(retrier.serve())
        await retrier.run_now("claim/a", attempt)
        retrier.forget("claim/a")
        await asyncio.sleep(0.1)
        serving.cancel()
        return calls

    assert asyncio.run(scenario()) == 1
