"""stowage as a CSI driver: the CSI services and the kubelet's plugin registration, served
over gRPC on unix sockets. Node side and controller side alike import this package; it
imports neither `stowage.reconcilers` nor `stowage.agent`."""

from stowage.drivers.base import CSI_DRIVER as DRIVER_NAME

__all__ = ["DRIVER_NAME"]
