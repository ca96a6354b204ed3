"""Pure builders of the Kubernetes objects the operator writes (JSON-shaped dicts, camelCase)."""

from __future__ import annotations

from stowage.objects.persistent_volume import (
    persistent_volume,
    static_persistent_volume,
    volume_name,
)
from stowage.objects.storage_class import storage_class

__all__ = ["persistent_volume", "static_persistent_volume", "storage_class", "volume_name"]
