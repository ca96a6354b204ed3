"""An iSCSI target (tgt) on a test host, and libiscsi checks of it from this machine.

    target = TgtTarget.start(host, "iqn.2026-11.io.stowage.e2e:pool",
                             luns={1: 64 * MIB, 2: 16 * MIB}, user="e2e", password="…")
    target.capacity(2)                       # bytes, as READ CAPACITY(16) over iSCSI reports
    target.capacity(2, password="wrong")     # raises IscsiLoginError
    target.stop()

`tgtd` runs in the foreground inside the host's network namespace with a control port of its
own (`CONTROL_PORT_BASE` + the host's index): its management socket and lock
(/var/run/tgtd/socket.<port>[.lock]) never clash with another tgtd on this machine. One target
with file-backed LUNs (sparse files under /var/lib/stowage-e2e/servers/<host>/tgt), every
initiator allowed, incoming CHAP bound when a user is given. `stop()` ends exactly the process
it started and removes its files.

The checks use libiscsi's userspace initiator (`iscsi-ls`, `iscsi-inq`, `iscsi-readcapacity16`):
this machine has no kernel iSCSI initiator. Debian's libiscsi-bin has no tool that reads a
LUN's blocks (no `iscsi-dd`), so `backing_head()` reads the LUN's file on the server side.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stowage_e2e.hosts import TestHost
from stowage_e2e.servers import SERVERS_DIR, require_packages, wait_for_port

ISCSI_PORT = 3260
CONTROL_PORT_BASE = 21000
TGT_RUN_DIR = Path("/var/run/tgtd")
MIB = 1024 * 1024
# libiscsi's URL has no escaping for the CHAP user and password: keep them to these.
_URL_SAFE = re.compile(r"^[A-Za-z0-9._:-]+$")


class IscsiLoginError(Exception):
    """libiscsi could not log in (wrong CHAP credentials, say) or reach the target."""


def iscsi_url(
    portal: str,
    iqn: str | None = None,
    lun: int | None = None,
    *,
    user: str | None = None,
    password: str | None = None,
) -> str:
    """libiscsi's `iscsi://user%password@host:port[/iqn/lun]`."""
    for value in (user, password):
        if value is not None and not _URL_SAFE.match(value):
            raise ValueError("CHAP user and password: letters, digits and ._:- only")
    auth = f"{user}%{password}@" if user and password else ""
    path = f"/{iqn}/{lun}" if iqn is not None and lun is not None else ""
    return f"iscsi://{auth}{portal}{path}"


def libiscsi(tool: str, url: str, *args: str) -> str:
    """Runs a libiscsi tool on URL; a refused login or unreachable portal is IscsiLoginError."""
    result = subprocess.run(
        [tool, *args, url], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise IscsiLoginError(f"{tool}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def libiscsi_capacity(
    portal: str, iqn: str, lun: int, *, user: str | None = None, password: str | None = None
) -> int:
    """A LUN's size in bytes, from READ CAPACITY(16) after a libiscsi login (CHAP when given)."""
    output = libiscsi(
        "iscsi-readcapacity16", iscsi_url(portal, iqn, lun, user=user, password=password)
    )
    match = re.search(r"^Total size:(\d+)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"iscsi-readcapacity16 said: {output}")
    return int(match[1])


@dataclass
class TgtTarget:
    """One tgtd with one target on one test host."""

    host: TestHost
    iqn: str
    luns: dict[int, int]
    user: str | None
    password: str | None
    state_dir: Path
    process: subprocess.Popen[bytes]
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        host: TestHost,
        iqn: str,
        luns: Mapping[int, int],
        *,
        user: str | None = None,
        password: str | None = None,
    ) -> TgtTarget:
        """Serves a LUN of each given size (bytes) under its number; CHAP when `user` is set."""
        if 0 in luns:
            raise ValueError("LUN 0 is tgt's controller LUN")
        for value in (user, password):
            if value is not None and not _URL_SAFE.match(value):
                raise ValueError("CHAP user and password: letters, digits and ._:- only")
        require_packages("tgt", "libiscsi-bin")
        state_dir = SERVERS_DIR / host.name / "tgt"
        state_dir.mkdir(parents=True, exist_ok=True)
        control = CONTROL_PORT_BASE + host.index
        if (TGT_RUN_DIR / f"socket.{control}").exists():
            raise RuntimeError(f"a tgtd with control port {control} exists already")
        log = (state_dir / "tgtd.log").open("ab")
        process = host.popen(
            ["tgtd", "-f", "-C", str(control)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        target = cls(host, iqn, dict(luns), user, password, state_dir, process)
        try:
            wait_for_port(host, ISCSI_PORT)
            target._configure()
        except Exception:
            target.stop()
            raise
        return target

    @property
    def control_port(self) -> int:
        return CONTROL_PORT_BASE + self.host.index

    @property
    def portal(self) -> str:
        return f"{self.host.ip}:{ISCSI_PORT}"

    def backing_file(self, lun: int) -> Path:
        return self.state_dir / f"lun{lun}.img"

    def tgtadm(self, *args: str) -> str:
        result = self.host.run(
            ["tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args], check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"tgtadm {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def _configure(self) -> None:
        self.tgtadm("--op", "new", "--mode", "target", "--tid", "1", "-T", self.iqn)
        for lun, size in sorted(self.luns.items()):
            path = self.backing_file(lun)
            with path.open("wb") as backing:
                backing.truncate(size)  # sparse: a 64 MiB LUN costs nothing on disk
            self.tgtadm(
                "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun),
                "--bstype", "rdwr", "--backing-store", str(path),
            )  # fmt: skip
        if self.user is not None and self.password is not None:
            self.tgtadm(
                "--op", "new", "--mode", "account", "--user", self.user,
                "--password", self.password,
            )  # fmt: skip
            self.tgtadm("--op", "bind", "--mode", "account", "--tid", "1", "--user", self.user)
        self.tgtadm("--op", "bind", "--mode", "target", "--tid", "1", "--initiator-address", "ALL")

    def url(
        self, lun: int | None = None, *, user: str | None = None, password: str | None = None
    ) -> str:
        """`iscsi://user%password@host:port/iqn/lun` (the target's own credentials by default)."""
        return iscsi_url(
            self.portal,
            self.iqn if lun is not None else None,
            lun,
            user=self.user if user is None else user,
            password=self.password if password is None else password,
        )

    def capacity(self, lun: int, *, user: str | None = None, password: str | None = None) -> int:
        """The LUN's size in bytes, from READ CAPACITY(16) over a libiscsi session."""
        return libiscsi_capacity(
            self.portal,
            self.iqn,
            lun,
            user=self.user if user is None else user,
            password=self.password if password is None else password,
        )

    def inquiry(
        self, lun: int, *, user: str | None = None, password: str | None = None
    ) -> dict[str, str]:
        """The standard INQUIRY data (`Vendor`, `Product`, `Peripheral Device Type`, ...)."""
        output = libiscsi("iscsi-inq", self.url(lun, user=user, password=password))
        fields: dict[str, str] = {}
        for line in output.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        return fields

    def listed_luns(self, *, user: str | None = None, password: str | None = None) -> set[int]:
        """The disk LUNs `iscsi-ls` sees after logging in."""
        output = libiscsi("iscsi-ls", self.url(user=user, password=password), "-s")
        return {int(m[1]) for m in re.finditer(r"Lun:(\d+)\s+Type:DIRECT_ACCESS", output)}

    def backing_head(self, lun: int, size: int = 512) -> bytes:
        """The first bytes of the LUN, read from its backing file on the server side."""
        with self.backing_file(lun).open("rb") as backing:
            return backing.read(size)

    def log(self) -> str:
        path = self.state_dir / "tgtd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Ends the tgtd this object started (by its pid) and removes its files."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            # tgtd exits on `--op delete --mode system` once no target is left; SIGTERM it ignores.
            for args in (
                ("--op", "delete", "--mode", "target", "--tid", "1", "--force"),
                ("--op", "delete", "--mode", "system"),
            ):
                self.host.run(
                    ["tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args],
                    check=False,
                )
            deadline = time.monotonic() + 10
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
        for name in (f"socket.{self.control_port}", f"socket.{self.control_port}.lock"):
            (TGT_RUN_DIR / name).unlink(missing_ok=True)
        for lun in self.luns:
            self.backing_file(lun).unlink(missing_ok=True)
        (self.state_dir / "tgtd.log").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # left when someone else put files there
            self.state_dir.rmdir()
