"""The CSI Identity service: who the driver is, what it offers, whether it is ready."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf.wrappers_pb2 import BoolValue

from stowage import __version__
from stowage.csi import DRIVER_NAME
from stowage.csi.proto import csi_pb2, csi_pb2_grpc

Service = csi_pb2.PluginCapability.Service
CAPABILITIES = (Service.CONTROLLER_SERVICE, Service.VOLUME_ACCESSIBILITY_CONSTRAINTS)


class Identity(csi_pb2_grpc.IdentityServicer):
    """`ready` answers Probe: False until the plugin can serve its other services."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self._ready = ready

    def add_to(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_IdentityServicer_to_server(self, server)

    def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=DRIVER_NAME, vendor_version=__version__)

    def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        return csi_pb2.GetPluginCapabilitiesResponse(
            capabilities=[
                csi_pb2.PluginCapability(service=Service(type=capability))
                for capability in CAPABILITIES
            ]
        )

    def Probe(
        self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse(ready=BoolValue(value=self._ready()))
