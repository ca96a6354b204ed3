"""An upgrade from the previous release (stowage_e2e.previous_release: every volume made by the
in-tree stowage.io/provisioner) to this tree's chart, with a volume of the old kind holding
data: after `helm upgrade` the old volume keeps its data and binding; the backend then opts in
to the CSI driver, a new claim gets a CSI volume, and each volume is released as its own
reclaim settings say."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import finished_log
from stowage_e2e.images import ImageBuilder
from stowage_e2e.install import NAMESPACE, Helm, Images, install
from stowage_e2e.kube import Kube
from stowage_e2e.previous_release import PREVIOUS_RELEASE, previous_images, previous_tree

pytestmark = pytest.mark.e2e

DRIVER = "csi.stowage.io"


def operator_containers(kube: Kube) -> list[str]:
    deployment = kube.get("deployment", "stowage-operator", NAMESPACE)
    return [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]


def read_back(kube: Kube, namespace: str, claim: str, image: str) -> str:
    """What a new pod of the claim reads from /data/hello.txt; the pod goes after."""
    kube.apply(scenario.script_pod("reader", claim, image, "cat /data/hello.txt"), namespace)
    text = finished_log(kube, namespace, "reader")
    kube.delete("pod", "reader", namespace, wait=True)
    return text


def write(kube: Kube, namespace: str, claim: str, image: str, text: str) -> None:
    kube.apply(scenario.writer_pod("writer", claim, image, text), namespace)
    assert finished_log(kube, namespace, "writer") == f"{text}\n"
    kube.delete("pod", "writer", namespace, wait=True)


def release(kube: Kube, namespace: str, claim: str) -> str:
    """Deletes the claim; returns its volume's name once the volume is gone."""
    volume = scenario.bound_volume(kube, claim, namespace)["metadata"]["name"]
    kube.delete("persistentvolumeclaim", claim, namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume}", "--timeout=90s")
    return volume


def test_an_upgrade_keeps_the_old_volumes_and_new_claims_of_an_opted_in_backend_get_csi(
    kube: Kube,
    kubeconfig: Path,
    namespace: str,
    host_directory: Path,
    image_builder: ImageBuilder,
    stowage_images: Images,
    tmp_path: Path,
) -> None:
    helm = Helm(Path(kubeconfig))
    tree = previous_tree(tmp_path / "previous")
    install(
        helm,
        previous_images(image_builder, tree, stowage_images),
        chart=tree / "charts" / "stowage",
    )
    assert operator_containers(kube) == ["operator"], f"not the release {PREVIOUS_RELEASE[:12]}"
    image = stowage_images.operator
    backend = f"upgrade-{uuid.uuid4().hex[:6]}"
    spec = {"hostPath": {"path": str(host_directory), "nodes": [settings().node_name]}}
    kube.apply(scenario.storage_backend(backend, spec))
    try:
        scenario.wait_ready(kube, backend)
        kube.apply(scenario.claim("old", backend, "16Mi"), namespace)
        write(kube, namespace, "old", image, "made before the upgrade")
        old = scenario.bound_volume(kube, "old", namespace)
        old_directory = Path(old["spec"]["hostPath"]["path"])

        install(helm, stowage_images)  # the upgrade
        assert operator_containers(kube) == ["operator", "csi-controller", "csi-provisioner"]
        assert read_back(kube, namespace, "old", image) == "made before the upgrade\n"

        patch = {"spec": {"provisioning": {"csi": True}}}
        kube.run("patch", "storagebackend", backend, "--type=merge", "-p", json.dumps(patch))
        kube.wait_for(
            "storageclass",
            backend,
            None,
            lambda storage_class: storage_class["provisioner"] == DRIVER,
            timeout=60,
            what=f"provisioner {DRIVER}",
        )
        scenario.wait_ready(kube, backend)
        kube.apply(scenario.claim("new", backend, "16Mi"), namespace)
        write(kube, namespace, "new", image, "made after the upgrade")
        new = scenario.bound_volume(kube, "new", namespace)
        assert new["spec"]["csi"]["driver"] == DRIVER
        record = kube.get("backendvolume", new["spec"]["csi"]["volumeHandle"])
        new_directory = Path(record["spec"]["path"])
        assert (new_directory / "hello.txt").read_text() == "made after the upgrade\n"

        # Still the in-tree volume, still readable, and released as before the upgrade: the
        # PV goes (reclaim policy Delete) and, hostPath having no helper to do it, the
        # directory stays (as the README says of hostPath without quota).
        assert "hostPath" in scenario.bound_volume(kube, "old", namespace)["spec"]
        assert read_back(kube, namespace, "old", image) == "made before the upgrade\n"
        release(kube, namespace, "old")
        assert (old_directory / "hello.txt").read_text() == "made before the upgrade\n"
        # The CSI volume's directory goes with it (onDelete Delete, by the node plugin).
        handle = release(kube, namespace, "new")
        kube.text("wait", "--for=delete", f"backendvolume/{handle}", "--timeout=60s")
        assert not new_directory.exists()
    finally:
        kube.run("--namespace", namespace, "delete", "pods,persistentvolumeclaims", "--all")
        kube.delete("storagebackend", backend, wait=True)
        install(helm, stowage_images)  # this tree's release for the tests after this one
