"""Names and paths of per-claim data: bounded, unique by claim UID, never outside their root."""

from __future__ import annotations

import hashlib
import posixpath
import re

# Short enough for an LVM logical volume, an RBD image and a directory with `archived-` before it.
CLAIM_DIRECTORY_MAX_LENGTH = 80
ARCHIVE_PREFIX = "archived-"
_NOT_NAME_CHARACTERS = re.compile(r"[^a-z0-9]+")
_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def slug(text: str) -> str:
    """Lower-case letters, digits and single dashes only: no `/`, `.` or `..` can survive."""
    return _NOT_NAME_CHARACTERS.sub("-", text.lower()).strip("-")


def claim_directory(namespace: str, name: str, uid: str) -> str:
    """`<namespace>-<name>-<uid>`, readable but shortened as needed; the UID makes it unique."""
    uid_part = uid.lower()
    if not _UID.match(uid_part):
        raise ValueError(f"not a Kubernetes UID: {uid!r}")
    budget = CLAIM_DIRECTORY_MAX_LENGTH - len(uid_part) - 1
    readable = slug(f"{namespace}-{name}")[:budget].rstrip("-")
    return f"{readable}-{uid_part}" if readable else uid_part


def archive_name(directory: str) -> str:
    return ARCHIVE_PREFIX + posixpath.basename(directory)


def path_under(root: str, *parts: str) -> str:
    """`root` joined with `parts` (absolute parts count as relative); ValueError if it escapes."""
    base = posixpath.normpath(root)
    joined = posixpath.normpath(posixpath.join(base, *(part.lstrip("/") for part in parts)))
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise ValueError(f"{joined!r} is outside {base!r}")
    return joined


def is_within(path: str, root: str) -> bool:
    """`path` is `root` or below it (both normalized)."""
    normalized, base = posixpath.normpath(path), posixpath.normpath(root)
    return normalized == base or normalized.startswith(base.rstrip("/") + "/")


def bounded_name(*parts: str, max_length: int = 253) -> str:
    """A Kubernetes object name from `parts`; a hash of the full text keeps long ones unique."""
    full = slug("-".join(parts))
    if len(full) <= max_length:
        return full
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]
    return f"{full[: max_length - len(digest) - 1].rstrip('-')}-{digest}"


def parts_below(root: str, path: str) -> list[str]:
    """The components of `path` below `root`; ValueError unless it is strictly below."""
    relative = posixpath.relpath(posixpath.normpath(path), posixpath.normpath(root))
    if relative.startswith("..") or posixpath.isabs(relative) or relative == ".":
        raise ValueError(f"{path} is not below {root}")
    return relative.split("/")
