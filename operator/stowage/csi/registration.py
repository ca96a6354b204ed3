"""The kubelet's plugin-registration API, served by stowage itself (in place of the
node-driver-registrar sidecar): the kubelet finds the socket in its plugins_registry folder,
asks GetInfo where the CSI socket is, and says with NotifyRegistrationStatus whether it took
the plugin."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

from stowage.csi import DRIVER_NAME
from stowage.csi.proto import pluginregistration_pb2, pluginregistration_pb2_grpc

logger = logging.getLogger(__name__)

KUBELET_REGISTRY = Path("/var/lib/kubelet/plugins_registry")
PLUGIN_TYPE = "CSIPlugin"
SUPPORTED_VERSIONS = ("1.0.0",)


def registration_socket(registry: Path = KUBELET_REGISTRY) -> Path:
    return registry / f"{DRIVER_NAME}-reg.sock"


@dataclass(frozen=True)
class KubeletAnswer:
    registered: bool
    error: str = ""


class Registration(pluginregistration_pb2_grpc.RegistrationServicer):
    """`endpoint`: the CSI socket's path as the kubelet sees it (on the host)."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._answer: KubeletAnswer | None = None

    @property
    def answer(self) -> KubeletAnswer | None:
        """The kubelet's last word on the registration; None before it said any."""
        return self._answer

    @property
    def registered(self) -> bool:
        return self._answer is not None and self._answer.registered

    def add_to(self, server: grpc.Server) -> None:
        pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(self, server)

    def GetInfo(
        self, request: pluginregistration_pb2.InfoRequest, context: grpc.ServicerContext
    ) -> pluginregistration_pb2.PluginInfo:
        return pluginregistration_pb2.PluginInfo(
            type=PLUGIN_TYPE,
            name=DRIVER_NAME,
            endpoint=self._endpoint,
            supported_versions=SUPPORTED_VERSIONS,
        )

    def NotifyRegistrationStatus(
        self, request: pluginregistration_pb2.RegistrationStatus, context: grpc.ServicerContext
    ) -> pluginregistration_pb2.RegistrationStatusResponse:
        self._answer = KubeletAnswer(request.plugin_registered, request.error)
        if request.plugin_registered:
            logger.info("the kubelet registered CSI driver %s", DRIVER_NAME)
        else:
            logger.error(
                "the kubelet did not register CSI driver %s: %s", DRIVER_NAME, request.error
            )
        return pluginregistration_pb2.RegistrationStatusResponse()
