"""Installing stowage into a cluster with its Helm chart.

The chart helpers (`render`, `lint`) serve the unit tests of the chart; `Helm` and
`install` serve the e2e tests; the session fixture `stowage_installed` gives every
e2e test an operator running in the cluster from the images built of this tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from stowage_e2e.cluster import provider, settings
from stowage_e2e.kube import Kube

REPO_DIR = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_DIR / "charts" / "stowage"
CRDS_DIR = REPO_DIR / "crds"
# helm built from source has no Kubernetes version of its own to render for.
KUBE_VERSION = "1.34.4"
NAMESPACE = "stowage-system"
RELEASE = "stowage"
OPERATOR_DEPLOYMENT = "stowage-operator"
METRICS_SERVICE = "stowage-operator-metrics"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator,app.kubernetes.io/name=stowage"
INSTALL_TIMEOUT = "5m"

Values = Mapping[str, Any]
Manifest = dict[str, Any]


def helm_binary() -> Path:
    explicit = os.environ.get("STOWAGE_HELM")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("STOWAGE_CACHE", "/var/cache/stowage")) / "bin" / "helm"


@dataclass(frozen=True)
class Helm:
    """helm, pointed at one cluster (or at none, for rendering and linting)."""

    kubeconfig: Path | None = None

    def run(
        self, *args: str, values: Values | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        binary = helm_binary()
        if not binary.exists():
            raise FileNotFoundError(
                f"{binary} is missing: run `bash e2e/scripts/build-binaries.sh`"
            )
        env = dict(os.environ)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as values_file:
            command = [str(binary), *args]
            if values is not None:
                json.dump(dict(values), values_file)
                values_file.flush()
                command += ["--values", values_file.name]
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result


def render_text(values: Values | None = None, namespace: str = NAMESPACE) -> str:
    return (
        Helm()
        .run(
            "template",
            RELEASE,
            str(CHART_DIR),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            values=values,
        )
        .stdout
    )


def render(values: Values | None = None, namespace: str = NAMESPACE) -> list[Manifest]:
    """The chart's manifests for these values, as `helm template` renders them."""
    return [doc for doc in yaml.safe_load_all(render_text(values, namespace)) if doc]


def lint(values: Values | None = None) -> subprocess.CompletedProcess[str]:
    return Helm().run(
        "lint",
        "--strict",
        str(CHART_DIR),
        "--kube-version",
        KUBE_VERSION,
        values=values,
        check=False,
    )


def of_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] == kind]


def generated_crds() -> list[Manifest]:
    """The CRDs of crds/, the files the chart must install unchanged."""
    return [
        doc
        for path in sorted(CRDS_DIR.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@dataclass(frozen=True)
class Images:
    operator: str
    helper: str

    def values(self) -> dict[str, Any]:
        """Chart values that run these images as imported, never pulled."""

        def image(reference: str) -> dict[str, str]:
            repository, _, tag = reference.rpartition(":")
            return {"repository": repository, "tag": tag}

        return {
            "image": {
                "operator": image(self.operator),
                "helper": image(self.helper),
                "pullPolicy": "Never",
            }
        }


def adopt_crds(kubeconfig: Path, namespace: str = NAMESPACE) -> None:
    """Hands CRDs applied with kubectl (as the integration tier does) over to the release.

    Helm refuses to install over objects it does not own; these labels and annotations are
    Helm's documented way to adopt them. Nothing is deleted, so no backend is lost.
    """
    kube = Kube(kubeconfig)
    for crd in generated_crds():
        name = crd["metadata"]["name"]
        if kube.run("get", "crd", name, check=False).returncode != 0:
            continue
        kube.run("label", "--overwrite", "crd", name, "app.kubernetes.io/managed-by=Helm")
        kube.run(
            "annotate",
            "--overwrite",
            "crd",
            name,
            f"meta.helm.sh/release-name={RELEASE}",
            f"meta.helm.sh/release-namespace={namespace}",
        )


def install(
    helm: Helm, images: Images, values: Values | None = None, chart: Path = CHART_DIR
) -> None:
    """`helm upgrade --install` the chart (this tree's, or another release's) and wait until
    the operator is Ready."""
    if helm.kubeconfig is not None:
        adopt_crds(helm.kubeconfig)
    # An earlier release's chart knows none of this cluster's values (nor its schema them).
    cluster = cluster_values() if chart == CHART_DIR else {}
    helm.run(
        "upgrade",
        "--install",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        INSTALL_TIMEOUT,
        values=merge(merge(images.values(), cluster), values or {}),
    )


def cluster_values() -> dict[str, Any]:
    """Chart values the cluster needs: the local provider's kubelets (this machine's and the VM
    nodes') have their own root directory."""
    if provider() != "local":
        return {}
    return {"csi": {"kubeletDir": str(settings().state_dir / "kubelet")}}


def merge(base: Values, override: Values) -> dict[str, Any]:
    """Deep merge of chart values, as helm merges several --values files."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class OperatorLogs:
    """The logs of every operator pod of the session (all its containers: the operator, the
    CSI controller and its sidecar), kept before a pod goes away."""

    kubeconfig: Path
    by_pod: dict[str, str] = field(default_factory=dict)

    def collect(self) -> None:
        """Reads the logs of the operator pods running now (call before replacing them)."""
        kube = Kube(self.kubeconfig)
        pods = kube.text(
            "--namespace", NAMESPACE, "get", "pods", "-l", OPERATOR_SELECTOR, "-o", "name"
        )
        for pod in pods.split():
            logs = kube.run("--namespace", NAMESPACE, "logs", pod, "--all-containers", check=False)
            if logs.returncode == 0:
                self.by_pod[pod] = logs.stdout

    def forbidden(self) -> list[str]:
        """Log lines that report an API request the operator's RBAC refused."""
        return [
            f"{pod}: {line}"
            for pod, text in self.by_pod.items()
            for line in text.splitlines()
            if is_rbac_refusal(line)
        ]


# The RBAC authorizer words every refusal as `User "..." cannot <verb> resource "..."`.
# Other 403s (a namespace being deleted refuses new Events) are not RBAC's.
RBAC_REFUSAL = re.compile(r'cannot [a-z]+ resource \\?"')


def is_rbac_refusal(log_line: str) -> bool:
    return bool(RBAC_REFUSAL.search(log_line))


@pytest.fixture(scope="session")
def stowage_images(image_builder: Any) -> Images:
    """The operator and helper images of this tree, built and in the cluster's containerd."""
    from stowage_e2e.images_stowage import build_stowage_images

    return build_stowage_images(image_builder)


@pytest.fixture(scope="session")
def operator_logs(kubeconfig: Path) -> OperatorLogs:
    return OperatorLogs(Path(kubeconfig))


@pytest.fixture(scope="session")
def stowage_installed(
    kubeconfig: Path, stowage_images: Images, operator_logs: OperatorLogs
) -> Iterator[Images]:
    """stowage installed by its chart in `stowage-system`, operator Ready; kept for the session.

    At the end of the session no operator pod may have logged a Forbidden (403) answer.
    """
    install(Helm(Path(kubeconfig)), stowage_images)
    yield stowage_images
    operator_logs.collect()
    forbidden = operator_logs.forbidden()
    assert not forbidden, "the operator was refused by the API server:\n" + "\n".join(forbidden)
