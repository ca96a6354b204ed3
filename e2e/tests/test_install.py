"""The chart on the real cluster: server-side validation, install, upgrade, uninstall."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage_e2e.install import (
    NAMESPACE,
    OPERATOR_DEPLOYMENT,
    OPERATOR_SELECTOR,
    Helm,
    Images,
    OperatorLogs,
    install,
    is_rbac_refusal,
    of_kind,
    render,
    render_text,
)

pytestmark = pytest.mark.e2e


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, *args, "--output", "json"))


def operator_pods(kubeconfig: Path) -> list[dict[str, Any]]:
    pods = kubectl_json(
        kubeconfig, "--namespace", NAMESPACE, "get", "pods", "-l", OPERATOR_SELECTOR
    )
    return [pod for pod in pods["items"] if "deletionTimestamp" not in pod["metadata"]]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def the_ready_operator_pod(kubeconfig: Path, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pods = operator_pods(kubeconfig)
        if len(pods) == 1 and is_ready(pods[0]):
            return pods[0]
        assert time.monotonic() < deadline, f"no single Ready operator pod: {pods}"
        time.sleep(2)


@pytest.fixture
def restricted_namespace(kubeconfig: Path) -> Iterator[str]:
    name = "stowage-restricted-check"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false")


def test_rendered_chart_passes_server_side_validation(kubeconfig: Path) -> None:
    # Namespaced objects need their namespace to exist, even for a dry run.
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(namespace))
    output = kubectl(kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=render_text())
    assert f"deployment.apps/{OPERATOR_DEPLOYMENT}" in output
    assert "customresourcedefinition.apiextensions.k8s.io/storagebackends.stowage.io" in output


def test_operator_pod_is_admitted_by_pod_security_restricted(
    kubeconfig: Path, restricted_namespace: str
) -> None:
    (deployment,) = of_kind(render(), "Deployment")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-admission-check", "namespace": restricted_namespace},
        "spec": {**deployment["spec"]["template"]["spec"], "serviceAccountName": "default"},
    }
    output = kubectl(kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
    assert "created (server dry run)" in output


def test_install_runs_the_operator_from_the_built_images(
    kubeconfig: Path, stowage_installed: Images
) -> None:
    pod = the_ready_operator_pod(kubeconfig)
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert set(containers) == {"operator", "csi-controller", "csi-provisioner"}
    assert {c["image"] for c in containers.values()} == {stowage_installed.operator}
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532
    # The sidecar's requests too: its RBAC is the chart's as well.
    name = pod["metadata"]["name"]
    logs = kubectl(kubeconfig, "--namespace", NAMESPACE, "logs", name, "--all-containers")
    refusals = [line for line in logs.splitlines() if is_rbac_refusal(line)]
    assert not refusals, "\n".join(refusals)


def test_upgrade_with_a_changed_value_rolls_the_operator(
    kubeconfig: Path, stowage_installed: Images, operator_logs: OperatorLogs
) -> None:
    before = the_ready_operator_pod(kubeconfig)
    helm = Helm(kubeconfig)
    operator_logs.collect()
    try:
        install(helm, stowage_installed, {"operator": {"logLevel": "debug"}})
        after = the_ready_operator_pod(kubeconfig)
        operator_logs.collect()
        assert after["metadata"]["uid"] != before["metadata"]["uid"]
        (container,) = [c for c in after["spec"]["containers"] if c["name"] == "operator"]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert env["STOWAGE_LOG_LEVEL"] == "debug"
    finally:
        install(helm, stowage_installed)


def test_uninstall_keeps_the_crds_and_the_users_backends(
    kubeconfig: Path, stowage_installed: Images, operator_logs: OperatorLogs
) -> None:
    backend = {
        "apiVersion": "stowage.io/v1alpha1",
        "kind": "StorageBackend",
        "metadata": {"name": "e2e-survives-uninstall"},
        "spec": {"hostPath": {"path": "/var/lib/stowage-e2e/survives-uninstall"}},
    }
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(backend))
    helm = Helm(kubeconfig)
    operator_logs.collect()
    try:
        helm.run("uninstall", "stowage", "--namespace", NAMESPACE, "--wait")
        assert not operator_pods(kubeconfig)
        for crd in ("storagebackends.stowage.io", "nasshares.stowage.io"):
            kubectl(kubeconfig, "get", "crd", crd)
        kubectl(kubeconfig, "get", "storagebackend", "e2e-survives-uninstall")
    finally:
        # Later tests share the session's installation; the operator also removes
        # whatever finalizer it put on the backend.
        install(helm, stowage_installed)
        kubectl(kubeconfig, "delete", "storagebackend", "e2e-survives-uninstall", "--timeout=120s")
