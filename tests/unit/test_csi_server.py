"""The unix-socket gRPC server: where it listens, who may connect, what it leaves behind."""

from __future__ import annotations

import socket
import stat
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from stowage.csi.identity import Identity
from stowage.csi.proto import csi_pb2, csi_pb2_grpc
from stowage.csi.server import serving

pytestmark = pytest.mark.unit

IDENTITY = Identity(lambda: True).add_to


def plugin_name(channel: grpc.Channel) -> str:
    info = csi_pb2_grpc.IdentityStub(channel).GetPluginInfo(
        csi_pb2.GetPluginInfoRequest(), timeout=5
    )
    return info.name


def test_serves_in_a_new_folder_on_a_socket_only_its_owner_may_use(
    tmp_path: Path, connect: Callable[[Path], grpc.Channel]
) -> None:
    path = tmp_path / "plugins" / "csi.stowage.io" / "csi.sock"
    with serving(path, IDENTITY):
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert plugin_name(connect(path)) == "csi.stowage.io"


def test_a_socket_shared_with_a_group_is_theirs_too(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    with serving(path, IDENTITY, mode=0o660):
        assert stat.S_IMODE(path.stat().st_mode) == 0o660


def test_replaces_the_socket_a_dead_process_left(
    tmp_path: Path, connect: Callable[[Path], grpc.Channel]
) -> None:
    path = tmp_path / "csi.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    assert path.is_socket()
    with serving(path, IDENTITY):
        assert plugin_name(connect(path)) == "csi.stowage.io"


def test_never_removes_a_file_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    path.write_text("not a socket")
    with pytest.raises(RuntimeError), serving(path, IDENTITY):
        pass
    assert path.read_text() == "not a socket"


def test_once_stopped_nothing_answers_and_the_socket_is_gone(
    tmp_path: Path, connect: Callable[[Path], grpc.Channel]
) -> None:
    path = tmp_path / "csi.sock"
    channel = connect(path)
    with serving(path, IDENTITY):
        assert plugin_name(channel) == "csi.stowage.io"
    assert not path.exists()
    with pytest.raises(grpc.RpcError) as failure:
        plugin_name(channel)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
