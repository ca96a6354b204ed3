"""Registration with the kubelet, as the kubelet's plugin watcher does it over the socket."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from stowage.csi.proto import pluginregistration_pb2, pluginregistration_pb2_grpc
from stowage.csi.registration import KubeletAnswer, Registration, registration_socket
from stowage.csi.server import serving

pytestmark = pytest.mark.unit

ENDPOINT = "/var/lib/kubelet/plugins/csi.stowage.io/csi.sock"


@pytest.fixture
def registration() -> Registration:
    return Registration(ENDPOINT)


@pytest.fixture
def kubelet(
    tmp_path: Path, registration: Registration, connect: Callable[[Path], grpc.Channel]
) -> Iterator[pluginregistration_pb2_grpc.RegistrationStub]:
    socket = registration_socket(tmp_path)
    with serving(socket, registration.add_to):
        yield pluginregistration_pb2_grpc.RegistrationStub(connect(socket))


def test_the_socket_is_where_the_kubelet_looks_for_the_driver(tmp_path: Path) -> None:
    assert registration_socket(tmp_path) == tmp_path / "csi.stowage.io-reg.sock"
    assert registration_socket().parent == Path("/var/lib/kubelet/plugins_registry")


def test_the_kubelet_learns_the_csi_plugin_and_its_socket(
    kubelet: pluginregistration_pb2_grpc.RegistrationStub,
) -> None:
    info = kubelet.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=5)
    assert info.type == "CSIPlugin"
    assert info.name == "csi.stowage.io"
    assert info.endpoint == ENDPOINT
    assert list(info.supported_versions) == ["1.0.0"]


def test_registration_is_known_once_the_kubelet_confirms_it(
    kubelet: pluginregistration_pb2_grpc.RegistrationStub, registration: Registration
) -> None:
    assert registration.answer is None
    assert not registration.registered
    kubelet.NotifyRegistrationStatus(
        pluginregistration_pb2.RegistrationStatus(plugin_registered=True), timeout=5
    )
    assert registration.registered
    assert registration.answer == KubeletAnswer(registered=True)


def test_a_refused_registration_is_kept_and_logged_with_the_kubelet_s_error(
    kubelet: pluginregistration_pb2_grpc.RegistrationStub,
    registration: Registration,
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = "plugin csi.stowage.io: no supported version"
    with caplog.at_level(logging.ERROR, logger="stowage.csi.registration"):
        kubelet.NotifyRegistrationStatus(
            pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error=error),
            timeout=5,
        )
    assert not registration.registered
    assert registration.answer == KubeletAnswer(registered=False, error=error)
    assert error in caplog.text
