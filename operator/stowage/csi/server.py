"""A gRPC server on a unix socket, as the kubelet and the CSI sidecars reach a CSI driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc

# Adds one servicer to a server: Identity.add_to, Registration.add_to.
Service = Callable[[grpc.Server], None]

# Only root (the kubelet, the sidecars of a privileged node plugin) may connect; a socket shared
# with non-root sidecars in the same pod is served with 0o660 and a common group.
OWNER_ONLY = 0o600
WORKERS = 4


@contextmanager
def serving(
    path: Path,
    *services: Service,
    mode: int = OWNER_ONLY,
    grace: float = 1.0,
    workers: int = WORKERS,
) -> Iterator[None]:
    """Serves `services` on the unix socket `path` for the block, `workers` calls at a time;
    at its end, lets the calls in flight finish within `grace` seconds and removes the
    socket."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A socket left by a process that is gone; binding over it would fail.
    if path.is_socket():
        path.unlink()
    server = grpc.server(ThreadPoolExecutor(max_workers=workers))
    for add in services:
        add(server)
    server.add_insecure_port(f"unix://{path}")
    path.chmod(mode)
    server.start()
    try:
        yield
    finally:
        server.stop(grace).wait()
        path.unlink(missing_ok=True)


def require(context: grpc.ServicerContext, *fields: tuple[str, object]) -> None:
    """Ends the call with INVALID_ARGUMENT naming the first of `fields` (what, value) that is
    empty, as the CSI spec asks of a request missing a required field."""
    for what, value in fields:
        if not value:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{what} is empty")
