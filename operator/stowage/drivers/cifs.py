"""cifs: an SMB share mounted on every node; a directory per claim, credentials from a Secret."""

from __future__ import annotations

from typing import ClassVar

from stowage.api.backend import CifsSpec, StorageType
from stowage.drivers.base import BackendRef, Problem, SecretRequirement
from stowage.drivers.common import forbidden_option_problems
from stowage.drivers.local import SharedMountDriver

CREDENTIAL_KEYS = ("username", "password")
OPTIONAL_KEYS = ("domain",)
CREDENTIAL_OPTIONS = ("username", "user", "password", "pass", "credentials", "domain")
VERSION_OPTIONS = ("vers",)


class CifsDriver(SharedMountDriver[CifsSpec]):
    storage_type: ClassVar[StorageType] = StorageType.CIFS
    spec_model = CifsSpec
    fs_type: ClassVar[str] = "cifs"

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        return [
            *forbidden_option_problems(
                backend, CREDENTIAL_OPTIONS, "credentials come from cifs.secretRef"
            ),
            *forbidden_option_problems(backend, VERSION_OPTIONS, "set cifs.version instead"),
        ]

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        secret = self.type_spec(backend).secret_ref
        return [SecretRequirement(secret, CREDENTIAL_KEYS, optional_keys=OPTIONAL_KEYS)]

    def mount_sources(self, backend: BackendRef) -> dict[str, str]:
        spec = self.type_spec(backend)
        return {server: f"//{server}/{spec.share}" for server in spec.servers}

    def type_mount_options(self, backend: BackendRef) -> tuple[str, ...]:
        return (f"vers={self.type_spec(backend).version.value}",)
