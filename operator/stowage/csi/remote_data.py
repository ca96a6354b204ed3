"""The CSI controller's work on volumes whose directories are in an export on a server (nfs):
it makes a volume's directory in CreateVolume and deletes or archives it in DeleteVolume over
the network, through libnfs (stowage.clients.nfs), as the mount helpers do for the in-tree
provisioner: no mount in the operator's pod, and no node involved."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

from stowage.clients.nfs import NfsSession
from stowage.drivers.base import NewDirectory, ReleasePlan, RemoteExport

# Seconds an NFS call may take before the CSI call fails (and the CO retries it).
NFS_TIMEOUT = 10.0


@contextlib.contextmanager
def session(export: RemoteExport, server: str) -> Iterator[NfsSession]:
    """A connection to the export on `server`; NfsError (an OSError) when it cannot be made."""
    opened = NfsSession(server, export.export, export.version, NFS_TIMEOUT)
    try:
        yield opened
    finally:
        opened.close()


def make_directory(export: RemoteExport, server: str, path: str, new: NewDirectory) -> bool:
    """Makes the volume's directory `path` on `server`; False if it was there already."""
    with session(export, server) as nfs:
        return nfs.make_directory(path, new)


def release(export: RemoteExport, server: str, path: str, plan: ReleasePlan) -> bool:
    """Deletes or archives the volume's directory on `server` as `plan` says (the caller
    keeps a Retain plan from here: it needs no connection); False when the directory is gone."""
    with session(export, server) as nfs:
        return plan.carry_out(partial(nfs.remove_tree, path), partial(nfs.archive, path))
