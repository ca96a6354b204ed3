"""GitOps with the in-cluster operator: the sample manifests, server-side applied twice.

A GitOps tool re-applies the same manifests forever; the operator must never write what the
user owns, or every sync shows a diff (the status is the operator's, and moves on by itself).
All samples of examples/ are applied (several are not Ready here: their Secrets or CSI drivers
do not exist, their servers do not answer; the reconciler runs all the same). Their servers are
a cut-off test host, so that no operator or helper ever reaches for the samples' addresses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stowage_e2e.hosts import TestHost
from stowage_e2e.install import REPO_DIR, Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

SAMPLES = sorted((REPO_DIR / "examples").rglob("*.yaml"))
FIELD_MANAGER = "gitops"
# Where a backend spec names the servers it connects to.
SERVER_LISTS = ("servers", "hosts", "monitors", "portals")


def at_server(value: Any, server: str) -> Any:
    """VALUE with every server address in it replaced by SERVER (a port kept; lists of servers
    end up with one entry per port)."""
    if isinstance(value, dict):
        return {
            key: (
                list(dict.fromkeys(address_at(item, server) for item in item_list))
                if key in SERVER_LISTS and isinstance(item_list := value[key], list)
                else f"git://{server}/site.git"
                if key == "repository"
                else at_server(value[key], server)
            )
            for key in value
        }
    if isinstance(value, list):
        return [at_server(item, server) for item in value]
    return value


def test_every_server_of_the_samples_is_pointed_at_the_given_host() -> None:
    backends = [m for m in samples("172.30.0.99") if m["kind"] == "StorageBackend"]
    originals = [m for m in samples_as_written() if m["kind"] == "StorageBackend"]
    addresses = [
        address
        for backend in backends
        for source in backend["spec"].values()
        if isinstance(source, dict)
        for key, value in source.items()
        if key in (*SERVER_LISTS, "repository")
        for address in (value if isinstance(value, list) else [value])
    ]
    assert len(addresses) == 7  # one each: cephfs, cifs, gitRepo, glusterfs, iscsi, nfs, rbd
    assert all("172.30.0.99" in address for address in addresses), addresses
    assert "10.0.0.21" in str(originals) and "10.0.0.21" not in str(backends)
    iscsi = next(m for m in backends if "iscsi" in m["spec"])["spec"]["iscsi"]
    assert iscsi["portals"] == ["172.30.0.99:3260"]


def samples_as_written() -> list[dict[str, Any]]:
    return [doc for path in SAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]


def address_at(address: str, server: str) -> str:
    port = address.rsplit(":", 1)[1] if address.count(":") == 1 else None
    return f"{server}:{port}" if port else server


def samples(server: str) -> list[dict[str, Any]]:
    return [at_server(doc, server) for doc in samples_as_written()]


def server_side_apply(kube: Kube, path: Path) -> None:
    kube.run("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--filename", str(path))


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
def samples_file(unreachable_host: TestHost, tmp_path: Path) -> Path:
    path = tmp_path / "samples.yaml"
    path.write_text(yaml.safe_dump_all(samples(unreachable_host.ip)))
    return path


@pytest.fixture
def applied_samples(
    kube: Kube, stowage_installed: Images, samples_file: Path
) -> Iterator[list[dict[str, Any]]]:
    manifests = list(yaml.safe_load_all(samples_file.read_text()))
    for namespace in {
        m["metadata"]["namespace"] for m in manifests if "namespace" in m["metadata"]
    }:
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    server_side_apply(kube, samples_file)
    yield manifests
    for manifest in manifests:
        kube.delete(
            manifest["kind"],
            manifest["metadata"]["name"],
            manifest["metadata"].get("namespace"),
            wait=True,
        )


def test_samples_applied_twice_change_nothing_and_keep_their_specs(
    kube: Kube, applied_samples: list[dict[str, Any]], samples_file: Path
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

    server_side_apply(kube, samples_file)

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
