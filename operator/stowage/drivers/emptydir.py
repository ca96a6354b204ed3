"""emptyDir: ephemeral node-local storage, a size-limited directory or tmpfs per claim.

The helper makes the directory (a tmpfs of the claim's size for medium Memory) and wipes it when
the volume is released, whatever provisioning.onDelete says.
"""

from __future__ import annotations

from typing import ClassVar

from stowage.api.backend import EmptyDirSpec, StorageType
from stowage.drivers.base import BackendRef
from stowage.drivers.local import NodeDirectoryDriver


class EmptyDirDriver(NodeDirectoryDriver[EmptyDirSpec]):
    storage_type: ClassVar[StorageType] = StorageType.EMPTY_DIR
    spec_model = EmptyDirSpec
    ephemeral: ClassVar[bool] = True

    def root_directory(self, backend: BackendRef) -> tuple[str, str]:
        return "emptyDir.basePath", self.type_spec(backend).base_path
