"""Secrets are read for which keys they hold, and copied key by key into the mount helpers'
Secret (`secret_data`). Values are decoded only where the operator itself logs in with them
(`secret_values`: iSCSI CHAP to wipe a LUN), and never logged or written anywhere but a Secret."""

from __future__ import annotations

import base64
import binascii

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


def secret_values(
    kube: Kube, namespace: str, name: str, keys: tuple[str, ...]
) -> dict[str, str] | None:
    """The decoded values of `keys` that the Secret holds (a value that is not base64 text is
    left out); None when it does not exist."""
    data = secret_data(kube, namespace, name, keys)
    if data is None:
        return None
    values: dict[str, str] = {}
    for key, value in data.items():
        try:
            values[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return values
