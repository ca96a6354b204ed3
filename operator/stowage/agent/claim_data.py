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

# Claim directories: anyone in the pod may write (as local-path-provisioner makes them).
CLAIM_DIRECTORY_MODE = 0o777
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def parts_below(root: str, path: str) -> list[str]:
    """The components of `path` below `root`; ValueError unless it is strictly below."""
    relative = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
    if relative.startswith("..") or os.path.isabs(relative) or relative == ".":
        raise ValueError(f"{path} is not below {root}")
    return relative.split(os.sep)


@contextlib.contextmanager
def opened_directory(root: str, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts..., walked without following symlinks."""
    descriptor = os.open(root, _DIRECTORY)
    try:
        for part in parts:
            created = False
            if create:
                try:
                    os.mkdir(part, mode=CLAIM_DIRECTORY_MODE, dir_fd=descriptor)
                    created = True
                except FileExistsError:
                    pass
            child = os.open(part, _DIRECTORY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
            if created:
                os.fchmod(descriptor, CLAIM_DIRECTORY_MODE)  # not narrowed by the umask
        yield descriptor
    finally:
        os.close(descriptor)


def make_directory_below(root: str, path: str) -> None:
    """Creates `path` (mode 0777) inside `root`, with any missing parents."""
    with opened_directory(root, parts_below(root, path), create=True):
        pass


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
