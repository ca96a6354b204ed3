"""`stowage nas-server`: NFS-Ganesha for one NASShare, its export rules reloaded in place.

The export configuration comes from the share's ConfigMap, mounted as a file that the kubelet
replaces when the operator changes the rules. The server keeps running: on a change it is sent
SIGHUP, on which Ganesha updates its exports, so clients that stay allowed keep their state and
clients newly allowed get in. Stopping the container stops Ganesha.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    config: Path
    exported: Path
    recovery: Path
    check_interval: float = 2.0


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class NfsServer:
    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._stopping = threading.Event()

    def run(self) -> int:
        # A new share is writable by every client user the rules let write (root is squashed
        # by default); the NFSv4 recovery state is the server's alone.
        for directory, mode in ((self._settings.exported, 0o777), (self._settings.recovery, 0o700)):
            if not directory.exists():
                directory.mkdir(parents=True)
                directory.chmod(mode)
        loaded = fingerprint(self._settings.config)
        ganesha = subprocess.Popen(
            [
                "ganesha.nfsd",
                "-F",
                "-L",
                "/dev/stderr",
                "-p",
                "/tmp/ganesha.pid",
                "-f",
                str(self._settings.config),
            ]
        )
        logger.info("NFS-Ganesha started (pid %d)", ganesha.pid)

        def stop(signum: int, frame: FrameType | None) -> None:
            self._stopping.set()
            ganesha.terminate()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)
        while ganesha.poll() is None and not self._stopping.wait(self._settings.check_interval):
            try:
                current = fingerprint(self._settings.config)
            except OSError as error:  # between the kubelet's swap of the file's link
                logger.debug("export configuration unreadable for now: %s", error)
                continue
            if current != loaded:
                logger.info("export rules changed: reloading them (SIGHUP)")
                ganesha.send_signal(signal.SIGHUP)
                loaded = current
        code = ganesha.wait()
        logger.info("NFS-Ganesha exited with %d", code)
        return 0 if self._stopping.is_set() else code or 1
