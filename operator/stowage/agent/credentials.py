"""The helper's copy of its backend's credentials, and the private files made from it.

The operator copies the keys a backend's type needs from the backend's Secret into a Secret in
the helper namespace (stowage.objects.helper_daemonset.helper_credentials_secret); the helper
pod mounts it at CREDENTIALS_DIR, one file a key. A client that needs them gets them in a file
of the helper's private state (0600, in a 0700 directory that `release` removes): a Ceph
keyring, a CIFS credentials file. Never on a command line (every user of the node reads
/proc/*/cmdline), in a log or in a message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class CredentialsError(Exception):
    """The helper's copy of the Secret is missing, or holds nothing usable."""


def read_keys(
    directory: Path, required: Sequence[str], optional: Sequence[str] = (), *, field: str
) -> dict[str, str]:
    """The keys present in the helper's Secret volume, stripped; `field` names the backend's
    Secret reference for the message when a required key is missing."""
    found: dict[str, str] = {}
    for key in (*required, *optional):
        try:
            found[key] = (directory / key).read_text().strip()
        except FileNotFoundError:
            if key in required:
                raise CredentialsError(
                    f"no {key} in the helper's copy of the backend's Secret (is the backend's "
                    f"{field} there, with keys {' and '.join(required)}?)"
                ) from None
    return found


def read_all(directory: Path) -> dict[str, bytes]:
    """Every key of the helper's Secret volume, as it is (an SSH key keeps its bytes)."""
    try:
        names = [path.name for path in directory.iterdir() if not path.name.startswith(".")]
    except FileNotFoundError:
        names = []
    if not names:
        raise CredentialsError(
            "the helper has no copy of the backend's Secret (is the Secret the backend names "
            "there? the operator copies it into the helper namespace)"
        )
    return {name: (directory / name).read_bytes() for name in sorted(names)}


def private_directory(state: Path) -> Path:
    """`state`, made if missing, readable by its owner alone."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.chmod(0o700)
    return state


def write_private(path: Path, text: str) -> None:
    """Writes `text` to a new file that only its owner can read, then moves it in place."""
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)  # a leftover of a crash
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(partial, path)
