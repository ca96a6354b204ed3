"""Zeroing an iSCSI LUN through libiscsi, the userspace initiator (ctypes; Debian `libiscsi7`).

The operator logs in to the target itself (no kernel initiator, no node, no pod), reads the LUN's
capacity with READ CAPACITY(16) and writes zeros over all of it with WRITE(16) in chunks of
`CHUNK_BYTES`. Portals are tried in the order given; a portal that cannot be reached, or refuses
the login, gives way to the next. CHAP passwords go to libiscsi only: never into a message.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from stowage.clients import native
from stowage.drivers.iscsi import portal_address

LIBRARY = "libiscsi.so.7"
# The name the operator logs in with when the backend names none.
DEFAULT_INITIATOR = "iqn.2026-11.io.stowage:operator"
CHUNK_BYTES = 4 * 1024 * 1024
SCSI_STATUS_GOOD = 0
SESSION_NORMAL = 2  # enum iscsi_session_type
# Seconds a SCSI command or the login may take, and SYN retries of the TCP connect (about 7 s).
COMMAND_TIMEOUT = 30
TCP_SYN_RETRIES = 2


class WipeError(Exception):
    """A LUN could not be zeroed; the message says why, without any credential."""


class _ReadCapacity16(ctypes.Structure):
    _fields_ = [("returned_lba", ctypes.c_uint64), ("block_length", ctypes.c_uint32)]


@dataclass(frozen=True)
class Chap:
    """CHAP credentials: the initiator's, and the target's for mutual CHAP."""

    user: str
    password: str = field(repr=False)
    target_user: str | None = None
    target_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LunAddress:
    portals: tuple[str, ...]
    iqn: str
    lun: int
    initiator: str = DEFAULT_INITIATOR


@dataclass(frozen=True)
class Wiped:
    portal: str
    size_bytes: int
    seconds: float

    @property
    def mib_per_second(self) -> float:
        return self.size_bytes / (1024 * 1024) / max(self.seconds, 1e-9)


@cache
def library() -> ctypes.CDLL:
    """libiscsi with the prototypes used here; WipeError when it is not installed."""
    context, text, task, number = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int
    write16: list[object] = [context, number, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint32]
    write16 += [number] * 6  # blocksize, wrprotect, dpo, fua, fua_nv, group_number
    prototypes: native.Prototypes = {
        "iscsi_create_context": (context, [text]),
        "iscsi_destroy_context": (number, [context]),
        "iscsi_get_error": (text, [context]),
        "iscsi_set_targetname": (number, [context, text]),
        "iscsi_set_session_type": (number, [context, number]),
        "iscsi_set_initiator_username_pwd": (number, [context, text, text]),
        "iscsi_set_target_username_pwd": (number, [context, text, text]),
        "iscsi_set_timeout": (number, [context, number]),
        "iscsi_set_tcp_syncnt": (number, [context, number]),
        "iscsi_set_noautoreconnect": (None, [context, number]),
        "iscsi_full_connect_sync": (number, [context, text, number]),
        "iscsi_logout_sync": (number, [context]),
        "iscsi_disconnect": (number, [context]),
        "iscsi_readcapacity16_sync": (task, [context, number]),
        "iscsi_write16_sync": (task, write16),
        "scsi_datain_unmarshall": (ctypes.c_void_p, [task]),
        "scsi_free_scsi_task": (None, [task]),
    }
    try:
        return native.load("iscsi", LIBRARY, prototypes)
    except OSError as error:
        raise WipeError(f"libiscsi ({LIBRARY}) is not installed: {error}") from None


def libiscsi_portal(portal: str) -> str:
    """`host:port` as libiscsi takes it (`[v6]:port`), port 3260 when the portal has none."""
    host, port = portal_address(portal)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def login_failure(portal: str, detail: str) -> str:
    """Why logging in through `portal` failed, in words, from libiscsi's error text."""
    lowered = detail.lower()
    if "authentication" in lowered or "authorization" in lowered or "chap" in lowered:
        return f"{portal}: the target refused the login (CHAP user or password wrong: {detail})"
    if "not found" in lowered or "target_not_found" in lowered.replace(" ", "_"):
        return f"{portal}: the target does not know the IQN or LUN ({detail})"
    if "connect" in lowered or "timed out" in lowered or "timeout" in lowered:
        return f"{portal}: the portal cannot be reached ({detail})"
    return f"{portal}: login failed ({detail})"


def chunks(
    blocks: int, block_size: int, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int, int]]:
    """(first LBA, number of blocks) of each WRITE that together cover `blocks` blocks."""
    per_chunk = max(1, chunk_bytes // block_size)
    for lba in range(0, blocks, per_chunk):
        yield lba, min(per_chunk, blocks - lba)


class IscsiSession:
    """One logged-in session to one LUN through one portal."""

    def __init__(self, portal: str, address: LunAddress, chap: Chap | None) -> None:
        self._lib = library()
        self.portal, self.lun = portal, address.lun
        self._context = self._lib.iscsi_create_context(address.initiator.encode())
        if not self._context:
            raise WipeError("libiscsi could not make a context")
        try:
            self._login(address, chap)
        except WipeError:
            self._lib.iscsi_destroy_context(self._context)
            raise

    def _login(self, address: LunAddress, chap: Chap | None) -> None:
        lib, context = self._lib, self._context
        lib.iscsi_set_targetname(context, address.iqn.encode())
        lib.iscsi_set_session_type(context, SESSION_NORMAL)
        lib.iscsi_set_timeout(context, COMMAND_TIMEOUT)
        lib.iscsi_set_tcp_syncnt(context, TCP_SYN_RETRIES)
        lib.iscsi_set_noautoreconnect(context, 1)
        if chap is not None:
            lib.iscsi_set_initiator_username_pwd(
                context, chap.user.encode(), chap.password.encode()
            )
            if chap.target_user and chap.target_password:
                lib.iscsi_set_target_username_pwd(
                    context, chap.target_user.encode(), chap.target_password.encode()
                )
        if lib.iscsi_full_connect_sync(context, libiscsi_portal(self.portal).encode(), self.lun):
            raise WipeError(login_failure(self.portal, self._error()))

    def _error(self) -> str:
        return (self._lib.iscsi_get_error(self._context) or b"").decode(errors="replace")

    def _finish(self, task: int | None, what: str) -> None:
        """Raises WipeError unless the SCSI task ran with status GOOD; frees it."""
        if not task:
            raise WipeError(f"{self.portal}: {what} failed ({self._error()})")
        status = ctypes.c_int.from_address(task).value  # struct scsi_task starts with `status`
        if status != SCSI_STATUS_GOOD:
            self._lib.scsi_free_scsi_task(task)
            raise WipeError(f"{self.portal}: {what} failed ({self._error()})")

    def capacity(self) -> tuple[int, int]:
        """(number of blocks, block size) from READ CAPACITY(16)."""
        task = self._lib.iscsi_readcapacity16_sync(self._context, self.lun)
        self._finish(task, f"READ CAPACITY(16) of LUN {self.lun}")
        try:
            data = self._lib.scsi_datain_unmarshall(task)
            if not data:
                raise WipeError(f"{self.portal}: LUN {self.lun} sent no capacity")
            answer = _ReadCapacity16.from_address(data)
            return answer.returned_lba + 1, answer.block_length
        finally:
            self._lib.scsi_free_scsi_task(task)

    def write(self, lba: int, data: ctypes.Array[ctypes.c_char], length: int, block: int) -> None:
        task = self._lib.iscsi_write16_sync(
            self._context, self.lun, lba, data, length, block, 0, 0, 0, 0, 0
        )
        self._finish(task, f"WRITE(16) at block {lba} of LUN {self.lun}")
        self._lib.scsi_free_scsi_task(task)

    def close(self) -> None:
        if self._context:
            self._lib.iscsi_logout_sync(self._context)
            self._lib.iscsi_disconnect(self._context)
            self._lib.iscsi_destroy_context(self._context)
            self._context = None


def zero(session: IscsiSession) -> int:
    """Writes zeros over the whole LUN of the session; its size in bytes."""
    blocks, block_size = session.capacity()
    if block_size <= 0:
        raise WipeError(f"{session.portal}: LUN {session.lun} reports a block size of 0")
    zeros = ctypes.create_string_buffer(max(block_size, CHUNK_BYTES // block_size * block_size))
    for lba, count in chunks(blocks, block_size):
        session.write(lba, zeros, count * block_size, block_size)
    return blocks * block_size


def wipe_lun(address: LunAddress, chap: Chap | None) -> Wiped:
    """Zeroes the LUN through the first portal that lets the operator in; WipeError naming what
    each portal answered when none does."""
    failures: list[str] = []
    for portal in address.portals:
        started = time.monotonic()
        try:
            session = IscsiSession(portal, address, chap)
            try:
                size = zero(session)
            finally:
                session.close()
        except WipeError as error:
            failures.append(str(error))
            continue
        return Wiped(portal, size, time.monotonic() - started)
    raise WipeError("; ".join(failures) or "the backend has no portal")
