"""gitRepo: a checkout of a Git repository per claim, cloned and kept in sync by the helper.

The checkout follows the repository, so it is offered read-only (ReadOnlyMany, and the PV's
mount option `ro`, which the kubelet applies to its bind mount): the helper on the chosen node
fetches it into a directory of its own, binds that onto the volume's path, and brings it up to
date every syncPeriod. It lives on one node and is recloned
rather than kept on release.
"""

from __future__ import annotations

import posixpath
import re
from typing import ClassVar

from stowage.api.backend import GitRepoSpec, StorageType
from stowage.drivers.base import (
    AccessMode,
    BackendRef,
    ClaimRequest,
    DataLocation,
    GitCheckout,
    NodeVolume,
    Problem,
    ProvisionedVolume,
    SecretRequirement,
    VolumeKind,
)
from stowage.drivers.local import NodePinnedDriver
from stowage.drivers.mounts import claim_volume_path, claim_volumes_root
from stowage.drivers.naming import path_under

HTTP_KEYS = ("username", "password")
SSH_KEYS = ("ssh-privatekey",)
SSH_OPTIONAL_KEYS = ("known_hosts",)
# Beside the claims' directories; claim directory names never start with a dot.
CHECKOUTS_DIRECTORY = ".checkouts"
_URL_PASSWORD = re.compile(r"^[a-z]+://[^/@]*:[^/@]*@")


def uses_ssh(repository: str) -> bool:
    return repository.startswith("ssh://") or "://" not in repository


class GitRepoDriver(NodePinnedDriver[GitRepoSpec]):
    storage_type: ClassVar[StorageType] = StorageType.GIT_REPO
    volume_kind: ClassVar[VolumeKind] = VolumeKind.FILE
    spec_model = GitRepoSpec
    ephemeral: ClassVar[bool] = True
    prepared_on_node: ClassVar[bool] = True
    access_modes: ClassVar[frozenset[str]] = frozenset({AccessMode.READ_ONLY_MANY})
    access_modes_reason: ClassVar[str] = (
        "a gitRepo checkout is kept in sync with the repository and is read-only; "
        "request ReadOnlyMany"
    )

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        spec = self.type_spec(backend)
        problems = []
        if _URL_PASSWORD.match(spec.repository):
            problems.append(
                Problem(
                    "gitRepo.repository",
                    "the URL carries a password; put credentials in gitRepo.credentialsSecretRef",
                )
            )
        if spec.credentials_secret_ref and spec.repository.startswith("git://"):
            problems.append(
                Problem(
                    "gitRepo.credentialsSecretRef",
                    "the git:// protocol has no authentication; use https:// or ssh://",
                )
            )
        return problems

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        spec = self.type_spec(backend)
        if spec.credentials_secret_ref is None:
            return []
        if uses_ssh(spec.repository):
            return [
                SecretRequirement(
                    spec.credentials_secret_ref, SSH_KEYS, optional_keys=SSH_OPTIONAL_KEYS
                )
            ]
        return [SecretRequirement(spec.credentials_secret_ref, HTTP_KEYS)]

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        return DataLocation(path=claim_volume_path(backend, directory), node=node, read_only=True)

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        return claim_volumes_root(backend)  # the node plugin binds each checkout there

    def node_volume(self, backend: BackendRef, volume: ProvisionedVolume) -> NodeVolume | None:
        path = volume.location.path
        if path is None:
            return None
        spec = self.type_spec(backend)
        root = claim_volumes_root(backend)
        checkout = GitCheckout(
            repository=spec.repository,
            revision=spec.revision,
            depth=spec.depth,
            sync_seconds=spec.sync_period_seconds,
            path=path_under(root, CHECKOUTS_DIRECTORY, posixpath.basename(path)),
            credentials=spec.credentials_secret_ref,
            ssh=uses_ssh(spec.repository),
        )
        return NodeVolume(root, path, checkout=checkout)
