"""One active server pod per NASShare: the holder of the share's coordination Lease.

The operator creates the Lease; every server container waits for it before starting its server,
under its pod's name, so that the NFS and SMB containers of one pod are active together. A
standby takes the Lease when its holder released it (a server stopping releases it) or has not
renewed it for its duration. That duration is measured on the standby's own clock, from when it
last saw the Lease change: the clocks of two nodes are never compared.

The active pod renews every RENEW_INTERVAL; a server that cannot renew within RENEW_DEADLINE
(shorter than the duration), or finds the Lease taken, stops its server before any standby may
start one on the same data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3

from stowage.kube import ApiError, ConflictError, Json, Kube
from stowage.kube.resources import LEASES

logger = logging.getLogger(__name__)

LEASE_DURATION_SECONDS = 10
RENEW_INTERVAL = 2.0
RENEW_DEADLINE = 6.0
RETRY_INTERVAL = 1.0
# What a call to the API server may fail with besides an answer: the server unreachable.
API_TROUBLE = (ApiError, OSError, urllib3.exceptions.HTTPError)


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    renewed: str  # as written by the holder: compared for change, never as a time
    duration: int

    @classmethod
    def of(cls, lease: Json) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            renewed=spec.get("renewTime") or "",
            duration=int(spec.get("leaseDurationSeconds") or LEASE_DURATION_SECONDS),
        )


def may_take(record: LeaseRecord, identity: str, unchanged_for: float) -> bool:
    """Whether `identity` may hold the Lease, seeing `record` unchanged for that many seconds."""
    if not record.holder or record.holder == identity:
        return True
    return unchanged_for >= record.duration


def micro_time(moment: datetime) -> str:
    """The API's MicroTime format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLostError(Exception):
    """The Lease is someone else's now, or could not be renewed in time."""


@dataclass(frozen=True)
class LeaseName:
    namespace: str
    name: str
    identity: str  # the server pod's name


class ActiveLease:
    def __init__(
        self, kube: Kube, lease: LeaseName, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kube = kube
        self._lease = lease
        self._clock = clock

    def _read(self) -> Json:
        found = self._kube.get(LEASES, self._lease.name, self._lease.namespace)
        if found is None:
            raise ApiError(404, "NotFound", f"Lease {self._lease.name} not made yet")
        return found

    def _write(self, current: Json, spec: Json) -> None:
        """Conditional on the Lease being as read: ConflictError if it changed since."""
        patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}}
        self._kube.merge_patch(
            LEASES,
            self._lease.name,
            {**patch, "spec": spec},
            namespace=self._lease.namespace,
        )

    def acquire(self) -> None:
        """Blocks until this pod holds the Lease."""
        me = self._lease.identity
        seen: LeaseRecord | None = None
        seen_at = self._clock()
        while True:
            try:
                current = self._read()
                record = LeaseRecord.of(current)
                if record != seen:
                    if record.holder and record.holder != me:
                        logger.info("standby: server pod %s is active", record.holder)
                    seen, seen_at = record, self._clock()
                if may_take(record, me, self._clock() - seen_at):
                    now = micro_time(datetime.now(UTC))
                    spec: Json = {
                        "holderIdentity": me,
                        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                        "renewTime": now,
                    }
                    if record.holder != me:
                        transitions = (current.get("spec") or {}).get("leaseTransitions") or 0
                        spec |= {"acquireTime": now, "leaseTransitions": transitions + 1}
                    self._write(current, spec)
                    logger.info("active: this pod holds Lease %s", self._lease.name)
                    return
            except ConflictError:
                continue  # another server wrote it first: look again at once
            except API_TROUBLE as error:
                logger.warning("Lease %s: %s", self._lease.name, error)
            time.sleep(RETRY_INTERVAL)

    def renew(self) -> None:
        """Raises LeaseLostError if the Lease is no longer this pod's."""
        current = self._read()
        holder = LeaseRecord.of(current).holder
        if holder != self._lease.identity:
            raise LeaseLostError(f"Lease {self._lease.name} is held by {holder or 'no one'} now")
        try:
            self._write(current, {"renewTime": micro_time(datetime.now(UTC))})
        except ConflictError:
            self.renew()  # the pod's other server renewed it just now; check who holds it

    def keep(self, lost: threading.Event, stopping: threading.Event) -> None:
        """Renews until `stopping`; sets `lost` (and returns) when it cannot."""
        renewed_at = self._clock()
        while not stopping.wait(RENEW_INTERVAL):
            try:
                self.renew()
                renewed_at = self._clock()
            except LeaseLostError as error:
                logger.error("%s", error)
                lost.set()
                return
            except API_TROUBLE as error:
                logger.warning("Lease %s not renewed: %s", self._lease.name, error)
            if self._clock() - renewed_at > RENEW_DEADLINE:
                logger.error("Lease %s not renewed for %.0f s", self._lease.name, RENEW_DEADLINE)
                lost.set()
                return

    def release(self) -> None:
        """Lets a standby take over at once (nothing to do if the Lease is not this pod's)."""
        try:
            current = self._read()
            if LeaseRecord.of(current).holder == self._lease.identity:
                self._write(current, {"holderIdentity": None, "leaseDurationSeconds": 1})
                logger.info("Lease %s released", self._lease.name)
        except API_TROUBLE as error:
            logger.warning("Lease %s not released: %s", self._lease.name, error)


@contextmanager
def active_turn(lease: ActiveLease | None) -> Iterator[threading.Event]:
    """Holds the Lease (if any) for the block, which starts once this pod is active; the
    Event it gives is set when the Lease is lost and the server must stop."""
    lost = threading.Event()
    if lease is None:
        yield lost
        return
    lease.acquire()
    stopping = threading.Event()
    keeper = threading.Thread(target=lease.keep, args=(lost, stopping), name="lease", daemon=True)
    keeper.start()
    try:
        yield lost
    finally:
        stopping.set()
        keeper.join()
        if not lost.is_set():
            lease.release()
