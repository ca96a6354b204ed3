"""Generated bindings of the CSI spec (csi_pb2*) and of the kubelet's plugin-registration API
(pluginregistration_pb2*): `make csi-proto` writes them, never edit them by hand."""
