"""Secrets are read for one fact only: which keys they hold. Values never leave this module."""

from __future__ import annotations

from stowage.kube.client import Kube
from stowage.kube.resources import SECRETS


def secret_keys(kube: Kube, namespace: str, name: str) -> frozenset[str] | None:
    """The key names of the Secret, or None when it does not exist."""
    secret = kube.get(SECRETS, name, namespace)
    if secret is None:
        return None
    return frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})
