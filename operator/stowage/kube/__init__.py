"""The I/O layer: the only package that talks to the Kubernetes API (besides kopf's watches)."""

from stowage.kube.client import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    Connection,
    InvalidError,
    Json,
    Kube,
    NotFoundError,
)
from stowage.kube.resources import Resource

__all__ = [
    "AlreadyExistsError",
    "ApiError",
    "ConflictError",
    "Connection",
    "InvalidError",
    "Json",
    "Kube",
    "NotFoundError",
    "Resource",
]
