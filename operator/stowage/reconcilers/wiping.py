"""Zeroing the LUN of a released iSCSI volume (backend `wipeOnDelete: true`) before the volume,
and with it the LUN's place in use, is deleted.

The wipe is blocking I/O of minutes for a large LUN: it runs in threads of its own, so that it
never holds up the API calls in the runtime's pool. One wipe per volume at a time.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from stowage.api.backend import IscsiSpec
from stowage.clients.iscsi import Chap, LunAddress, Wiped, WipeError, wipe_lun
from stowage.drivers.base import BACKEND_LABEL
from stowage.drivers.iscsi import CHAP_KEYS, MUTUAL_CHAP_KEYS
from stowage.kube import Json, Kube
from stowage.kube.secrets import secret_values

logger = logging.getLogger(__name__)

WIPE_WORKERS = 2


def chap_of(kube: Kube, spec: IscsiSpec) -> Chap | None:
    """The CHAP credentials of the backend's Secret; WipeError when it or a key is missing."""
    ref = spec.chap_secret_ref
    if ref is None:
        return None
    values = secret_values(kube, ref.namespace, ref.name, CHAP_KEYS + MUTUAL_CHAP_KEYS)
    if values is None:
        raise WipeError(f"the CHAP Secret {ref.namespace}/{ref.name} does not exist")
    missing = [key for key in CHAP_KEYS if not values.get(key)]
    if missing:
        raise WipeError(f"the CHAP Secret {ref.namespace}/{ref.name} has no {', '.join(missing)}")
    user, password = (values[key] for key in CHAP_KEYS)
    target_user, target_password = (values.get(key) for key in MUTUAL_CHAP_KEYS)
    return Chap(user, password, target_user, target_password)


def lun_address(spec: IscsiSpec, lun: int) -> LunAddress:
    if spec.initiator_name:
        return LunAddress(tuple(spec.portals), spec.iqn, lun, spec.initiator_name)
    return LunAddress(tuple(spec.portals), spec.iqn, lun)


def wipe(kube: Kube, spec: IscsiSpec, lun: int) -> Wiped:
    """Zeroes the LUN (blocking); WipeError says why it was not."""
    return wipe_lun(lun_address(spec, lun), chap_of(kube, spec))


class Wiper:
    """Runs wipes in its own threads, at most one per volume (by UID). The volumes being wiped
    are planned around as in use even if their PV is deleted meanwhile: no claim gets a LUN
    while zeros are being written to it."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._executor: ThreadPoolExecutor | None = None
        self._running: dict[str, Json] = {}

    def is_running(self, uid: str) -> bool:
        return uid in self._running

    def volumes_of(self, backend: str) -> list[Json]:
        return [
            volume
            for volume in self._running.values()
            if (volume["metadata"].get("labels") or {}).get(BACKEND_LABEL) == backend
        ]

    async def wipe(self, volume: Json, spec: IscsiSpec, lun: int) -> Wiped:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(WIPE_WORKERS, thread_name_prefix="stowage-wipe")
        uid = volume["metadata"]["uid"]
        self._running[uid] = volume
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, wipe, self._kube, spec, lun)
        finally:
            del self._running[uid]
