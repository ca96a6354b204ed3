"""The active-server Lease of a NASShare, between two would-be servers, on the real API server.

Each `ActiveLease` here stands for a server pod; the Lease is made as the operator makes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from itkit import Api, unique

from stowage.kube.resources import LEASES
from stowage.nas.election import (
    RENEW_DEADLINE,
    ActiveLease,
    LeaseLostError,
    LeaseName,
    LeaseRecord,
    active_turn,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def lease(api: Api, namespace: str) -> Iterator[str]:
    name = unique("lease")
    manifest = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {},
    }
    api.kube.create(LEASES, manifest)
    yield name
    api.delete(LEASES, name, namespace)


def server(api: Api, namespace: str, lease: str, pod: str) -> ActiveLease:
    return ActiveLease(api.kube, LeaseName(namespace, lease, identity=pod))


def holder(api: Api, namespace: str, lease: str) -> str:
    return LeaseRecord.of(api.get(LEASES, lease, namespace) or {}).holder


def acquire_in_background(standby: ActiveLease) -> threading.Event:
    acquired = threading.Event()

    def run() -> None:
        standby.acquire()
        acquired.set()

    threading.Thread(target=run, daemon=True).start()
    return acquired


def test_one_server_is_active_and_the_standby_takes_over_when_it_stops(
    api: Api, namespace: str, lease: str
) -> None:
    active, standby = (server(api, namespace, lease, pod) for pod in ("pod-a", "pod-b"))
    with active_turn(active) as lost:
        assert holder(api, namespace, lease) == "pod-a"
        acquired = acquire_in_background(standby)
        # pod-a renews every 2 s: pod-b stays standby past the Lease's 10 s duration.
        assert not acquired.wait(12), "the standby took a Lease that was being renewed"
        assert not lost.is_set()
        stopped = time.monotonic()
    # Leaving the turn releases the Lease: the standby is active within its 1 s retry.
    assert acquired.wait(5)
    assert time.monotonic() - stopped < 3
    assert holder(api, namespace, lease) == "pod-b"


def test_a_silent_holder_is_replaced_after_the_duration_and_then_learns_it_lost(
    api: Api, namespace: str, lease: str
) -> None:
    crashed, standby = (server(api, namespace, lease, pod) for pod in ("pod-a", "pod-b"))
    crashed.acquire()  # and then never renews, as a server on a lost node
    started = time.monotonic()
    acquired = acquire_in_background(standby)
    assert acquired.wait(20)
    waited = time.monotonic() - started
    assert 10 <= waited < 14, f"took over after {waited:.1f} s"
    with pytest.raises(LeaseLostError, match="held by pod-b"):
        crashed.renew()


def test_an_active_server_that_cannot_renew_is_told_to_stop_before_a_standby_may_start(
    api: Api, namespace: str, lease: str
) -> None:
    active = server(api, namespace, lease, "pod-a")
    active.acquire()
    api.delete(LEASES, lease, namespace)  # renewals fail from now on
    lost, stopping = threading.Event(), threading.Event()
    started = time.monotonic()
    threading.Thread(target=active.keep, args=(lost, stopping), daemon=True).start()
    assert lost.wait(RENEW_DEADLINE + 5)
    assert time.monotonic() - started < 10  # before any standby's 10 s of silence end
