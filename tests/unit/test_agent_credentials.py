"""The helper's copy of its backend's Secret, as the kubelet lays out a Secret volume."""

from __future__ import annotations

from pathlib import Path

import pytest

from stowage.agent.credentials import CredentialsError, read_all

pytestmark = pytest.mark.unit


def secret_volume(directory: Path, data: dict[str, bytes]) -> Path:
    """Keys as the kubelet writes them: symlinks into a hidden, atomically swapped directory."""
    payload = directory / "..2026_11_26_10_00_00.000000001"
    payload.mkdir(parents=True)
    for key, value in data.items():
        (payload / key).write_bytes(value)
    (directory / "..data").symlink_to(payload.name)
    for key in data:
        (directory / key).symlink_to(f"..data/{key}")
    return directory


def test_every_key_is_read_as_its_bytes_and_the_volume_s_own_entries_are_not(
    tmp_path: Path,
) -> None:
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    volume = secret_volume(tmp_path / "credentials", {"ssh-privatekey": key, "known_hosts": b"h"})
    assert read_all(volume) == {"known_hosts": b"h", "ssh-privatekey": key}


def test_no_copy_of_the_secret_is_an_error_that_says_so(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no copy of the backend's Secret"):
        read_all(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CredentialsError, match="no copy of the backend's Secret"):
        read_all(tmp_path / "empty")
