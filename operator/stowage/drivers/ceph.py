"""What the two Ceph types share: monitors and a Ceph user from a Secret."""

from __future__ import annotations

from collections.abc import Sequence

from stowage.api.common import SecretReference
from stowage.drivers.base import BackendRef, Problem, SecretRequirement
from stowage.drivers.common import forbidden_option_problems, port_problems

CEPH_USER_KEYS = ("userID", "userKey")
CREDENTIAL_OPTIONS = ("name", "secret", "secretfile")


def ceph_problems(type_field: str, monitors: Sequence[str], backend: BackendRef) -> list[Problem]:
    return [
        *port_problems(f"{type_field}.monitors", monitors),
        *forbidden_option_problems(
            backend, CREDENTIAL_OPTIONS, f"credentials come from {type_field}.userSecretRef"
        ),
    ]


def ceph_user(secret: SecretReference) -> list[SecretRequirement]:
    return [SecretRequirement(secret, CEPH_USER_KEYS)]
