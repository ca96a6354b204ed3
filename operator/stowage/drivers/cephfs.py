"""cephfs: a CephFS filesystem mounted on every node; a directory per claim (with a quota).

The helper mounts it with ceph-fuse, the user-space client (stowage.agent.ceph_fuse): it needs no
kernel module, and its process outlives a helper restart as Gluster's does. The source is
`monitors:/path`; the file system's name is a client setting (`client_fs`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from stowage.api.backend import CephfsSpec, StorageType
from stowage.drivers.base import BackendRef, HostMount, Problem, SecretRequirement
from stowage.drivers.ceph import ceph_problems, ceph_user
from stowage.drivers.local import SharedMountDriver


class CephfsDriver(SharedMountDriver[CephfsSpec]):
    storage_type: ClassVar[StorageType] = StorageType.CEPHFS
    spec_model = CephfsSpec
    fs_type: ClassVar[str] = "ceph"
    has_directory_quota: ClassVar[bool] = True

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        return ceph_problems("cephfs", self.type_spec(backend).monitors, backend)

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        return ceph_user(self.type_spec(backend).user_secret_ref)

    def mount_sources(self, backend: BackendRef) -> dict[str, str]:
        # One source: the Ceph client fails over between the monitors itself.
        spec = self.type_spec(backend)
        monitors = ",".join(spec.monitors)
        return {monitors: f"{monitors}:{spec.path}"}

    def host_mount(self, backend: BackendRef, node: str) -> HostMount:
        settings = (("client_fs", self.type_spec(backend).fs_name),)
        return dataclasses.replace(super().host_mount(backend, node), client_settings=settings)
