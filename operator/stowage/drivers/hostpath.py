"""hostPath: persistent node-local storage, a directory per claim (like local-path-provisioner).

The PV is an in-tree `hostPath` source of type DirectoryOrCreate, pinned to its node: the
kubelet makes the claim's directory itself when the first pod starts, so a claim is usable
without a mount helper. The helper's part is only the data work on release (Delete, Archive).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from stowage.api.backend import HostPathSpec, StorageType
from stowage.drivers.base import BackendRef, VolumePlan
from stowage.drivers.local import NodeDirectoryDriver


class HostPathDriver(NodeDirectoryDriver[HostPathSpec]):
    storage_type: ClassVar[StorageType] = StorageType.HOST_PATH
    spec_model = HostPathSpec

    def root_directory(self, backend: BackendRef) -> tuple[str, str]:
        return "hostPath.path", self.type_spec(backend).path

    def listed_nodes(self, backend: BackendRef) -> Sequence[str]:
        return self.type_spec(backend).nodes

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        return {"hostPath": {"path": plan.location.path, "type": "DirectoryOrCreate"}}
