"""hostPath: persistent node-local storage, a directory per claim (like local-path-provisioner)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from stowage.api.backend import HostPathSpec, StorageType
from stowage.drivers.base import BackendRef
from stowage.drivers.local import NodeDirectoryDriver


class HostPathDriver(NodeDirectoryDriver[HostPathSpec]):
    storage_type: ClassVar[StorageType] = StorageType.HOST_PATH
    spec_model = HostPathSpec

    def root_directory(self, backend: BackendRef) -> tuple[str, str]:
        return "hostPath.path", self.type_spec(backend).path

    def listed_nodes(self, backend: BackendRef) -> Sequence[str]:
        return self.type_spec(backend).nodes
