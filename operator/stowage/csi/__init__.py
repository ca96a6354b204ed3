"""stowage as a CSI driver: the CSI services and the kubelet's plugin registration, served
over gRPC on unix sockets. Node side and controller side alike import this package; it
imports neither `stowage.reconcilers` nor `stowage.agent`."""

DRIVER_NAME = "csi.stowage.io"
