"""Claim directories on an NFS export through libnfs, the userspace NFS client: no mount on the
node, so no stale mount can hang the helper, and it works where the kernel has no NFS client.

Paths are below the export (libnfs resolves them on the server, within the export). Trees are
walked with lstat and never through a symlink a pod planted: a symlink is removed, not followed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from functools import cache

from stowage.clients import native
from stowage.clients.network import probe
from stowage.drivers.base import PARENT_DIRECTORY_MODE, NewDirectory, RemoteExport
from stowage.drivers.naming import parts_below

LIBRARY = "libnfs.so.13"
NFS_V3 = 3
NFS_V4 = 4
NFS_PORT = 2049
PORTMAPPER_PORT = 111  # where NFSv3 clients find mountd and nfsd
ROOT = 0


class NfsError(OSError):
    """An NFS call failed; `errno` is the server's answer as an errno."""


class _Stat64(ctypes.Structure):
    _fields_ = [  # struct nfs_stat_64: all uint64_t
        (name, ctypes.c_uint64)
        for name in (
            "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
            "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used",
        )
    ]  # fmt: skip


class _DirEntry(ctypes.Structure):
    _fields_ = [("next", ctypes.c_void_p), ("name", ctypes.c_char_p)]  # struct nfsdirent's head


@cache
def library() -> ctypes.CDLL:
    """libnfs with the prototypes used here; OSError when it is not installed."""
    context, text = ctypes.c_void_p, ctypes.c_char_p
    prototypes: native.Prototypes = {
        "nfs_init_context": (context, []),
        "nfs_destroy_context": (None, [context]),
        "nfs_get_error": (text, [context]),
        "nfs_set_timeout": (None, [context, ctypes.c_int]),
        "nfs_set_version": (ctypes.c_int, [context, ctypes.c_int]),
        "nfs_mount": (ctypes.c_int, [context, text, text]),
        "nfs_umount": (ctypes.c_int, [context]),
        "nfs_mkdir2": (ctypes.c_int, [context, text, ctypes.c_int]),
        "nfs_set_uid": (None, [context, ctypes.c_int]),
        "nfs_set_gid": (None, [context, ctypes.c_int]),
        "nfs_lstat64": (ctypes.c_int, [context, text, ctypes.POINTER(_Stat64)]),
        "nfs_opendir": (ctypes.c_int, [context, text, ctypes.POINTER(ctypes.c_void_p)]),
        "nfs_readdir": (ctypes.POINTER(_DirEntry), [context, ctypes.c_void_p]),
        "nfs_closedir": (None, [context, ctypes.c_void_p]),
        "nfs_rmdir": (ctypes.c_int, [context, text]),
        "nfs_unlink": (ctypes.c_int, [context, text]),
        "nfs_rename": (ctypes.c_int, [context, text, text]),
    }
    return native.load("nfs", LIBRARY, prototypes, use_errno=True)


def protocol_version(version: str) -> int:
    """libnfs speaks NFSv3 and NFSv4.0: a backend of v4.1 or v4.2 has its directories made
    over v4.0 (the kubelet still mounts with the backend's version)."""
    return NFS_V3 if version == "3" else NFS_V4


def export_relative(export: str, path: str) -> str:
    """The path of `path` (as clients mount it) below the export root: `/a/b`."""
    return "/" + "/".join(parts_below(export, path))


def mount_failure(server: str, export: str, number: int, detail: str, connection: str) -> str:
    """Why the export could not be reached, in words for the cluster administrator;
    `connection` is what a plain TCP connect to the server's port found."""
    if number == errno.ENOENT:
        return f"{server} does not export {export}"
    if number in (errno.EACCES, errno.EPERM):
        return f"{server} refuses this node access to {export} ({detail})"
    return f"{server} does not answer over NFS ({connection or detail or os.strerror(number)})"


def first_port(version: str) -> int:
    """The port a client of `version` connects to first."""
    return NFS_PORT if protocol_version(version) == NFS_V4 else PORTMAPPER_PORT


def connection_problem(server: str, port: int, timeout: float) -> str:
    """What a TCP connect to `port` of the server finds wrong; empty if it opens."""
    found = probe(server, port, timeout)
    return {
        "ok": "",
        "refused": f"nothing listens on port {port}: connection refused",
        "timeout": f"no answer on port {port} within {timeout:g} s",
    }.get(found, f"port {port} is unreachable")


class NfsSession:
    """One connection to an export of one server."""

    def __init__(self, server: str, export: str, version: str, timeout: float) -> None:
        self._lib = library()
        self.server, self.export = server, export
        self._context = self._lib.nfs_init_context()
        if not self._context:
            raise NfsError(errno.ENOMEM, "libnfs could not make a context")
        self._lib.nfs_set_timeout(self._context, int(timeout * 1000))
        # AUTH_SYS root, whoever runs this (the helpers as root, the CSI controller as a user
        # of its own): the export's root squash, if any, is the server's to apply.
        self._lib.nfs_set_uid(self._context, ROOT)
        self._lib.nfs_set_gid(self._context, ROOT)
        self._lib.nfs_set_version(self._context, protocol_version(version))
        result = self._lib.nfs_mount(self._context, server.encode(), export.encode())
        if result < 0:
            detail = (self._lib.nfs_get_error(self._context) or b"").decode(errors="replace")
            self._lib.nfs_destroy_context(self._context)
            connection = ""
            if -result not in (errno.ENOENT, errno.EACCES, errno.EPERM):
                connection = connection_problem(server, first_port(version), timeout)
            raise NfsError(-result, mount_failure(server, export, -result, detail, connection))

    def close(self) -> None:
        if self._context:
            self._lib.nfs_umount(self._context)
            self._lib.nfs_destroy_context(self._context)
            self._context = None

    def _check(self, result: int, what: str) -> None:
        if result < 0:
            detail = (self._lib.nfs_get_error(self._context) or b"").decode(errors="replace")
            raise NfsError(-result, f"{what}: {detail or os.strerror(-result)}")

    def _call(self, function: str, path: str, *arguments: object) -> int:
        result: int = getattr(self._lib, function)(self._context, path.encode(), *arguments)
        return result

    def lstat(self, path: str) -> int | None:
        """The mode of `path` (below the export), without following a symlink; None if absent."""
        found = _Stat64()
        result = self._call("nfs_lstat64", path, ctypes.byref(found))
        if result == -errno.ENOENT:
            return None
        self._check(result, f"lstat {path}")
        return int(found.mode)

    def list_directory(self, path: str) -> list[str]:
        handle = ctypes.c_void_p()
        self._check(self._call("nfs_opendir", path, ctypes.byref(handle)), f"opendir {path}")
        try:
            return [name for name in self._entries(handle) if name not in (".", "..")]
        finally:
            self._lib.nfs_closedir(self._context, handle)

    def _entries(self, handle: ctypes.c_void_p) -> Iterator[str]:
        while entry := self._lib.nfs_readdir(self._context, handle):
            yield entry.contents.name.decode(errors="surrogateescape")

    def _make(self, path: str, mode: int) -> bool:
        result = self._call("nfs_mkdir2", path, mode)  # the server takes the mode as it is
        if result == -errno.EEXIST:
            return False
        self._check(result, f"mkdir {path}")
        return True

    def make_directory(self, path: str, new: NewDirectory) -> bool:
        """Creates the directory `path` (as clients mount it, below the export) with any
        missing parents (mode 0755); False if it was there already, left as it is.

        libnfs cannot change the owner or mode of a directory over NFSv4 (its SETATTR goes
        through an OPEN, which a directory refuses), so both are set at creation: a directory
        with an owner is made by that user (AUTH_SYS) in a scratch directory beside it, then
        moved into place. Set-id and sticky bits are never set (mkdir drops them)."""
        relative = export_relative(self.export, path)
        parent, name = relative.rsplit("/", 1)
        parts = relative.strip("/").split("/")
        for depth in range(1, len(parts)):
            self._make("/" + "/".join(parts[:depth]), PARENT_DIRECTORY_MODE)
        if new.uid is None and new.gid is None:
            return self._make(relative, new.mode)
        if self.lstat(relative) is not None:
            return False
        scratch = f"{parent}/.stowage-new-{name}"
        self._make(scratch, 0o777)
        with self._as_user(new.uid or 0, new.gid or 0):
            self._make(f"{scratch}/{name}", new.mode)
        self._check(
            self._call("nfs_rename", f"{scratch}/{name}", relative.encode()), f"rename {relative}"
        )
        self._check(self._call("nfs_rmdir", scratch), f"rmdir {scratch}")
        return True

    @contextlib.contextmanager
    def _as_user(self, uid: int, gid: int) -> Iterator[None]:
        """The calls inside carry `uid` and `gid` as their AUTH_SYS credentials."""
        self._lib.nfs_set_uid(self._context, uid)
        self._lib.nfs_set_gid(self._context, gid)
        try:
            yield
        finally:
            self._lib.nfs_set_uid(self._context, ROOT)
            self._lib.nfs_set_gid(self._context, ROOT)

    def remove_tree(self, path: str) -> bool:
        """Deletes `path` and everything in it; False if it was gone."""
        return self._remove(export_relative(self.export, path))

    def _remove(self, path: str) -> bool:
        mode = self.lstat(path)
        if mode is None:
            return False
        if stat.S_ISDIR(mode):
            for name in self.list_directory(path):
                self._remove(f"{path}/{name}")
            result = self._call("nfs_rmdir", path)
        else:
            result = self._call("nfs_unlink", path)
        if result != -errno.ENOENT:  # another node's helper may be removing it too
            self._check(result, f"remove {path}")
        return True

    def archive(self, path: str, archive_name: str) -> bool:
        """Renames the directory `path` to `archive_name` beside it; False if it was gone. An
        archive of that name already there is never overwritten."""
        if "/" in archive_name or archive_name in ("", ".", ".."):
            raise ValueError(f"{archive_name!r} is not a directory name")
        relative = export_relative(self.export, path)
        if self.lstat(relative) is None:
            return False
        target = f"{relative.rsplit('/', 1)[0]}/{archive_name}"
        if self.lstat(target) is not None:
            raise FileExistsError(f"{archive_name} exists beside {relative}")
        self._check(self._call("nfs_rename", relative, target.encode()), f"rename {relative}")
        return True


class Sessions:
    """Connections to the servers of one export, each opened on first use and kept for one
    pass of the helper (until `close`); a server that failed is not tried again in the same
    pass."""

    def __init__(self, export: RemoteExport, timeout: float) -> None:
        self._export = export
        self._timeout = timeout
        self._opened: dict[str, NfsSession | NfsError] = {}

    def close(self) -> None:
        for opened in self._opened.values():
            if isinstance(opened, NfsSession):
                opened.close()

    def session(self, server: str) -> NfsSession:
        """The connection to `server`; NfsError when it cannot be made."""
        if server not in self._opened:
            try:
                self._opened[server] = NfsSession(
                    server, self._export.export, self._export.version, self._timeout
                )
            except NfsError as error:
                self._opened[server] = error
        opened = self._opened[server]
        if isinstance(opened, NfsError):
            raise opened
        return opened

    def first_answering(self) -> tuple[str | None, list[str]]:
        """The first server, in the node's failover order, that lets this node in; and why
        each one before it did not."""
        failures = []
        for server in self._export.servers:
            try:
                self.session(server)
            except NfsError as error:
                failures.append(error.strerror or str(error))
            else:
                return server, failures
        return None, failures
