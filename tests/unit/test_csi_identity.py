"""The CSI Identity service as the kubelet and the sidecars call it: over its unix socket."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from stowage import __version__
from stowage.csi.identity import Identity
from stowage.csi.proto import csi_pb2, csi_pb2_grpc
from stowage.csi.server import serving

pytestmark = pytest.mark.unit

Service = csi_pb2.PluginCapability.Service


@pytest.fixture
def ready() -> threading.Event:
    return threading.Event()


@pytest.fixture
def identity(
    tmp_path: Path, ready: threading.Event, connect: Callable[[Path], grpc.Channel]
) -> Iterator[csi_pb2_grpc.IdentityStub]:
    socket = tmp_path / "csi.sock"
    with serving(socket, Identity(ready.is_set).add_to):
        yield csi_pb2_grpc.IdentityStub(connect(socket))


def test_the_plugin_names_stowage_s_driver_and_version(
    identity: csi_pb2_grpc.IdentityStub,
) -> None:
    info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=5)
    assert info.name == "csi.stowage.io"
    assert info.vendor_version == __version__


def test_the_plugin_offers_a_controller_and_topology(
    identity: csi_pb2_grpc.IdentityStub,
) -> None:
    answer = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), timeout=5)
    assert {capability.service.type for capability in answer.capabilities} == {
        Service.CONTROLLER_SERVICE,
        Service.VOLUME_ACCESSIBILITY_CONSTRAINTS,
    }


def test_probe_says_not_ready_until_the_plugin_is_ready(
    identity: csi_pb2_grpc.IdentityStub, ready: threading.Event
) -> None:
    before = identity.Probe(csi_pb2.ProbeRequest(), timeout=5)
    assert before.HasField("ready")
    assert not before.ready.value
    ready.set()
    assert identity.Probe(csi_pb2.ProbeRequest(), timeout=5).ready.value
