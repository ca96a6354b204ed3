"""The pure parts of the helper's NFS client; the client itself is tested against a real
NFS-Ganesha in e2e/tests/test_nfs_backend.py."""

from __future__ import annotations

import errno
import socket

import pytest

from stowage.clients.nfs import (
    NFS_V3,
    NFS_V4,
    connection_problem,
    export_relative,
    first_port,
    mount_failure,
    protocol_version,
)

pytestmark = pytest.mark.unit


def test_paths_are_taken_below_the_export_and_never_outside_it() -> None:
    assert export_relative("/export", "/export/claims/ns-a-1") == "/claims/ns-a-1"
    assert export_relative("/", "/claims/ns-a-1") == "/claims/ns-a-1"
    for outside in ("/export", "/exported/a", "/export/../etc"):
        with pytest.raises(ValueError):
            export_relative("/export", outside)


def test_v4_1_and_v4_2_backends_have_their_directories_made_over_v4_0() -> None:
    assert [protocol_version(v) for v in ("3", "4", "4.1", "4.2")] == [NFS_V3] + [NFS_V4] * 3


def test_mount_failures_are_told_in_words() -> None:
    assert mount_failure("nfs-1", "/gone", errno.ENOENT, "NFS4ERR_NOENT", "") == (
        "nfs-1 does not export /gone"
    )
    assert "refuses this node access to /export" in mount_failure(
        "nfs-1", "/export", errno.EACCES, "NFS4ERR_ACCESS", ""
    )
    silent = mount_failure("nfs-1", "/export", errno.EIO, "nfs_service failed", "no answer")
    assert silent == "nfs-1 does not answer over NFS (no answer)"


def test_a_connection_is_told_as_refused_or_fine() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert connection_problem("127.0.0.1", port, 1.0) == ""
    assert connection_problem("127.0.0.1", port, 1.0) == (
        f"nothing listens on port {port}: connection refused"
    )
    assert (first_port("4.1"), first_port("3")) == (2049, 111)
