"""GitOps with the in-cluster operator: the sample manifests, server-side applied twice.

A GitOps tool re-applies the same manifests forever; the operator must never write what the
user owns, or every sync shows a diff (the status is the operator's, and moves on by itself).
All samples of examples/ are applied (several are not Ready here: their servers, Secrets or
CSI drivers do not exist; the reconciler runs all the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stowage_e2e.install import REPO_DIR, Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

SAMPLES = sorted((REPO_DIR / "examples").rglob("*.yaml"))
FIELD_MANAGER = "gitops"


def samples() -> list[dict[str, Any]]:
    return [doc for path in SAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]


def server_side_apply(kube: Kube, paths: list[Path]) -> None:
    files = [arg for path in paths for arg in ("--filename", str(path))]
    kube.run("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", *files)


def live(kube: Kube, manifest: dict[str, Any]) -> dict[str, Any]:
    metadata = manifest["metadata"]
    namespace = ["--namespace", metadata["namespace"]] if "namespace" in metadata else []
    found: dict[str, Any] = kube.json(
        "get", manifest["kind"], metadata["name"], *namespace, "--show-managed-fields"
    )
    return found


def reconciled(backend: dict[str, Any]) -> bool:
    status = backend.get("status") or {}
    return status.get("observedGeneration") == backend["metadata"]["generation"]


@pytest.fixture
def applied_samples(kube: Kube, stowage_installed: Images) -> Iterator[list[dict[str, Any]]]:
    manifests = samples()
    for namespace in {
        m["metadata"]["namespace"] for m in manifests if "namespace" in m["metadata"]
    }:
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    server_side_apply(kube, SAMPLES)
    yield manifests
    for manifest in manifests:
        kube.delete(
            manifest["kind"],
            manifest["metadata"]["name"],
            manifest["metadata"].get("namespace"),
            wait=True,
        )


def test_samples_applied_twice_change_nothing_and_keep_their_specs(
    kube: Kube, applied_samples: list[dict[str, Any]]
) -> None:
    assert len([m for m in applied_samples if m["kind"] == "StorageBackend"]) == 13
    for manifest in applied_samples:
        if manifest["kind"] == "StorageBackend":
            kube.wait_for(
                "storagebackend",
                manifest["metadata"]["name"],
                None,
                reconciled,
                timeout=60,
                what="status.observedGeneration == generation",
            )
    before = {m["metadata"]["name"]: live(kube, m) for m in applied_samples}

    server_side_apply(kube, SAMPLES)

    for manifest in applied_samples:
        name = manifest["metadata"]["name"]
        after = live(kube, manifest)
        assert_unchanged_by_the_apply(before[name], after, f"{manifest['kind']} {name}")
        # Every applied field is in the live spec as written (the schema adds defaults beside).
        assert_contains(after["spec"], manifest["spec"], f"{manifest['kind']} {name}")
        spec_managers = {
            entry["manager"]
            for entry in after["metadata"]["managedFields"]
            if "f:spec" in (entry.get("fieldsV1") or {})
        }
        assert spec_managers == {FIELD_MANAGER}, f"{name}: spec written by {spec_managers}"


def assert_unchanged_by_the_apply(
    before: dict[str, Any], after: dict[str, Any], where: str
) -> None:
    """The second apply wrote nothing: no new generation (the spec), the same labels and
    annotations. The status may move on meanwhile (helpers report their nodes), so an object
    with a generation is not held to its resourceVersion; one without must keep it."""
    old, new = before["metadata"], after["metadata"]
    if "generation" in old:
        assert new["generation"] == old["generation"], f"{where}: a new generation"
    else:
        assert new["resourceVersion"] == old["resourceVersion"], f"{where} was written"
    for field in ("labels", "annotations"):
        assert new.get(field) == old.get(field), f"{where}: metadata.{field} changed"


def assert_contains(live_value: Any, applied: Any, where: str) -> None:
    if isinstance(applied, dict):
        assert isinstance(live_value, dict), f"{where}: {live_value!r} is not a mapping"
        for key, value in applied.items():
            assert key in live_value, f"{where}.{key} is missing"
            assert_contains(live_value[key], value, f"{where}.{key}")
    else:
        assert live_value == applied, f"{where}: {live_value!r} != {applied!r}"
