"""A claim's directory below a backend mount: made before the pod starts, removed or archived
when the volume is released.

The paths come from PVs the operator made, but the tree below the mount is shared storage that
pods write to: every step down is opened with O_NOFOLLOW relative to the last, so a symlink
planted there cannot send the agent anywhere else on the node, and nothing outside `root` is
ever touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

from stowage.drivers.base import PARENT_DIRECTORY_MODE, NewDirectory
from stowage.drivers.naming import parts_below

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@contextlib.contextmanager
def opened_directory(root: str, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts..., walked without following symlinks; with `create`,
    missing directories are made (mode 0755)."""
    descriptor = os.open(root, _DIRECTORY)
    try:
        for part in parts:
            created = create and _made(part, descriptor)
            child = os.open(part, _DIRECTORY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
            if created:
                settle(descriptor, NewDirectory(PARENT_DIRECTORY_MODE))
        yield descriptor
    finally:
        os.close(descriptor)


def _made(name: str, parent: int) -> bool:
    try:
        os.mkdir(name, mode=0o700, dir_fd=parent)  # the real mode follows, without the umask
    except FileExistsError:
        return False
    return True


def settle(descriptor: int, new: NewDirectory) -> None:
    if new.uid is not None or new.gid is not None:
        uid = -1 if new.uid is None else new.uid
        gid = -1 if new.gid is None else new.gid
        os.fchown(descriptor, uid, gid)
    os.fchmod(descriptor, new.mode)  # after chown, which would clear a setgid bit


def make_directory_below(root: str, path: str, new: NewDirectory) -> bool:
    """Creates `path` inside `root` with any missing parents; False if it was there already
    (then its mode and owner are left as they are)."""
    *parents, name = parts_below(root, path)
    with opened_directory(root, parents, create=True) as parent:
        if not _made(name, parent):
            return False
        descriptor = os.open(name, _DIRECTORY, dir_fd=parent)
        try:
            settle(descriptor, new)
        finally:
            os.close(descriptor)
    return True


def remove_directory_below(root: str, path: str) -> bool:
    """Deletes the directory `path` inside `root` with everything in it; False if it was gone."""
    *parents, name = parts_below(root, path)
    try:
        with opened_directory(root, parents) as parent:
            shutil.rmtree(name, dir_fd=parent)  # fd-based: does not follow symlinks inside
    except FileNotFoundError:
        return False
    return True


def archive_directory_below(root: str, path: str, archive_name: str) -> bool:
    """Renames the directory `path` inside `root` to `archive_name` beside it; False if it was
    gone. An archive of that name already there is never overwritten."""
    if os.sep in archive_name or archive_name in ("", ".", ".."):
        raise ValueError(f"{archive_name!r} is not a directory name")
    *parents, name = parts_below(root, path)
    try:
        with opened_directory(root, parents) as parent:
            os.stat(name, dir_fd=parent, follow_symlinks=False)  # gone: archived already
            try:
                os.stat(archive_name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise FileExistsError(f"{archive_name} exists beside {name}")
            os.rename(name, archive_name, src_dir_fd=parent, dst_dir_fd=parent)
    except FileNotFoundError:
        return False
    return True
