"""Integration tier: the real API server and controller manager, the operator as a process.

`kubeconfig` comes from the e2e fixtures (the local cluster, or $KUBECONFIG). `operator` applies
the CRDs and runs `stowage run` against that cluster, its log captured to a file the tests read.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from itkit import Api, OperatorProcess, storage_backend, unique, wait_for

from stowage.kube import Connection, Kube
from stowage.kube.resources import CSI_DRIVERS, STORAGE_BACKENDS


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> Iterator[Api]:
    kube = Kube(Connection.load(Path(kubeconfig), pool_size=8), timeout=30)
    yield Api(Path(kubeconfig), kube)
    kube.close()


@pytest.fixture(scope="session")
def crds(api: Api) -> list[str]:
    rendered = subprocess.run(
        [sys.executable, "-m", "stowage", "crds"], capture_output=True, text=True, check=True
    ).stdout
    api.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=rendered)
    names = [doc["metadata"]["name"] for doc in yaml.safe_load_all(rendered) if doc]
    for name in names:
        api.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return names


# Per module, so that it has stopped before the e2e tier installs the in-cluster operator:
# two operators must never handle the same claims.
@pytest.fixture(scope="module")
def operator(
    api: Api, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(api.kubeconfig, log_path)
    process.start()
    yield process
    process.stop()
    print(f"operator log: {log_path}", file=sys.stderr)


@pytest.fixture
def csi_driver(api: Api) -> Iterator[Callable[[str], None]]:
    """Creates CSIDriver objects (no driver runs: the object is what the operator looks for)."""
    created: list[str] = []

    def create(name: str) -> None:
        if api.get(CSI_DRIVERS, name) is None:
            api.kube.create(
                CSI_DRIVERS,
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "CSIDriver",
                    "metadata": {"name": name},
                    "spec": {"attachRequired": True, "podInfoOnMount": False},
                },
            )
            created.append(name)

    yield create
    for name in created:
        api.kube.delete(CSI_DRIVERS, name)


@pytest.fixture
def backends(api: Api) -> Iterator[Callable[[str, dict[str, Any]], str]]:
    """Applies backends with unique names; deletes them (and waits) afterwards."""
    created: list[str] = []

    def make(prefix: str, spec: dict[str, Any]) -> str:
        name = unique(prefix.lower())
        api.apply(storage_backend(name, spec))
        created.append(name)
        return name

    yield make
    for name in created:
        api.delete(STORAGE_BACKENDS, name)
    for name in created:
        wait_for(partial(api.gone, STORAGE_BACKENDS, name), timeout=60, what=f"{name} deleted")
