"""Run one server process for the life of the container, and tell it when its files change.

The operator's ConfigMap and the user's Secret reach a server pod as files that the kubelet
replaces on a change. The server keeps running: `on_change` (reload the configuration, update
the users) is called with the process whenever what the watched files hold changes. Stopping the
container stops the server.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)

CHECK_INTERVAL = 2.0


def fingerprint(paths: Sequence[Path]) -> str:
    """Of the contents of the files, and of the files in the directories, among `paths`."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def supervise(
    command: Sequence[str],
    watched: Sequence[Path],
    on_change: Callable[[subprocess.Popen[bytes]], None],
    *,
    lost: threading.Event | None = None,
    check_interval: float = CHECK_INTERVAL,
) -> int:
    """Runs `command` until it exits, the container is stopped (0) or `lost` is set: this pod
    is no longer the active server (1, the container restarts as a standby)."""
    stopping = threading.Event()
    loaded = fingerprint(watched)
    server = subprocess.Popen(list(command))
    logger.info("%s started (pid %d)", command[0], server.pid)

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        server.terminate()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    while server.poll() is None and not stopping.wait(check_interval):
        if lost is not None and lost.is_set():
            logger.error("%s: no longer the active server, stopping it", command[0])
            server.terminate()
            server.wait()
            return 1
        try:
            current = fingerprint(watched)
        except OSError as error:  # the kubelet swapping the files' link
            logger.debug("watched files unreadable for now: %s", error)
            continue
        if current != loaded:
            logger.info("%s: configuration changed, reloading it", command[0])
            on_change(server)
            loaded = current
    code = server.wait()
    logger.info("%s exited with %d", command[0], code)
    return 0 if stopping.is_set() else code or 1
