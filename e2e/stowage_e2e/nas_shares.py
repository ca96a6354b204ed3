"""A NASShare as the e2e tests make and watch it: the manifest, its server pods, the Lease
that says which of them serves, and its conditions."""

from __future__ import annotations

from typing import Any

from stowage_e2e import scenario
from stowage_e2e.kube import Kube

SHARE = "files"


def nas_share(
    backend: str,
    clients: list[dict[str, str]],
    smb: dict[str, Any] | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backend": backend,
        "size": "1Gi",
        "protocols": ["nfs"],
        "nfs": {"clients": clients},
    }
    if smb is not None:
        spec["protocols"].append("smb")
        spec["smb"] = smb
    if replicas != 1:
        spec["replicas"] = replicas
    return {
        "apiVersion": scenario.API_VERSION,
        "kind": "NASShare",
        "metadata": {"name": SHARE},
        "spec": spec,
    }


def wait_serving(kube: Kube, namespace: str, timeout: float = 180) -> dict[str, Any]:
    share: dict[str, Any] = kube.wait_for(
        "nasshare",
        SHARE,
        namespace,
        scenario.is_ready,
        timeout=timeout,
        what=f"NASShare {SHARE} Ready",
    )
    return share


def condition(share: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in share["status"]["conditions"] if c["type"] == type_)


def wait_with_standby(kube: Kube, namespace: str, timeout: float = 120) -> dict[str, Any]:
    share: dict[str, Any] = kube.wait_for(
        "nasshare",
        SHARE,
        namespace,
        lambda s: scenario.is_ready(s) and condition(s, "Degraded")["status"] == "False",
        timeout=timeout,
        what="Ready with a standby running (Degraded=False)",
    )
    return share


def server_pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    pods = kube.json(
        "get", "pods", "--namespace", namespace, "--selector", f"stowage.io/nasshare={SHARE}"
    )
    return [p for p in pods["items"] if "deletionTimestamp" not in p["metadata"]]


def lease_holder(kube: Kube, namespace: str) -> str:
    holder: str = kube.get("lease", f"stowage-nas-{SHARE}", namespace)["spec"]["holderIdentity"]
    return holder


def wait_takeover(kube: Kube, namespace: str, gone: str, timeout: float = 60) -> str:
    """The server pod that holds the Lease once `gone` no longer does."""
    lease = kube.wait_for(
        "lease",
        f"stowage-nas-{SHARE}",
        namespace,
        lambda lease: lease["spec"].get("holderIdentity") not in (None, gone),
        timeout=timeout,
        what=f"another server pod than {gone} holding the Lease",
    )
    holder: str = lease["spec"]["holderIdentity"]
    return holder
