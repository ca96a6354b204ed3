"""Secrets are read for which keys they hold, and copied key by key into the mount helpers'
Secret (`secret_data`). Values are never decoded, logged or written anywhere but a Secret."""

from __future__ import annotations

from stowage.kube.client import Kube
from stowage.kube.resources import SECRETS


def secret_keys(kube: Kube, namespace: str, name: str) -> frozenset[str] | None:
    """The key names of the Secret, or None when it does not exist."""
    secret = kube.get(SECRETS, name, namespace)
    if secret is None:
        return None
    return frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})


def secret_data(
    kube: Kube, namespace: str, name: str, keys: tuple[str, ...]
) -> dict[str, str] | None:
    """The base64 values of `keys` that the Secret holds, for a copy; None when it does not
    exist."""
    secret = kube.get(SECRETS, name, namespace)
    if secret is None:
        return None
    data: dict[str, str] = secret.get("data") or {}
    return {key: data[key] for key in keys if key in data}
