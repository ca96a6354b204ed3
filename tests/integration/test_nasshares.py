"""The NASShare reconciler against the real API server: what it writes, what status it reports,
what it leaves alone when the rules change, and what goes when the share goes. (The servers
themselves run in the e2e tier: here their image is not in the cluster, so they never start.)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from itkit import Api, OperatorProcess, unique, wait_for

from stowage.kube import Json
from stowage.kube.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    NAS_SHARES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    SERVICES,
)

pytestmark = pytest.mark.integration

# The node's kubelet can mount these (it has no NFS client), so the server pod gets as far as
# its image, which is not in this cluster.
HOST_PATH_BACKEND = {"hostPath": {"path": "/var/lib/stowage-e2e/data/it-nas"}}
RULES = [{"cidr": "10.244.0.0/16", "access": "ReadWrite"}]


def nas_share(name: str, namespace: str, backend: str, rules: list[dict[str, str]]) -> Json:
    return {
        "apiVersion": "stowage.io/v1alpha1",
        "kind": "NASShare",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backend": backend,
            "size": "2Gi",
            "protocols": ["nfs"],
            "nfs": {"clients": rules},
        },
    }


def ready_condition(api: Api, name: str, namespace: str) -> Json | None:
    body = api.get(NAS_SHARES, name, namespace) or {}
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def wait_reason(api: Api, name: str, namespace: str, reason: str) -> Json:
    return wait_for(
        lambda: (
            c if (c := ready_condition(api, name, namespace)) and c["reason"] == reason else None
        ),
        timeout=60,
        what=f"NASShare {name} Ready reason {reason}",
    )


def test_a_share_of_a_missing_backend_says_so(
    api: Api, operator: OperatorProcess, namespace: str
) -> None:
    name = unique("share")
    api.apply(nas_share(name, namespace, "no-such-backend", RULES))
    condition = wait_reason(api, name, namespace, "BackendNotFound")
    assert condition["status"] == "False"
    assert "no-such-backend" in condition["message"]
    api.delete(NAS_SHARES, name, namespace)
    wait_for(partial(api.gone, NAS_SHARES, name, namespace), timeout=30, what="share deleted")


def test_a_share_gets_its_objects_a_claim_for_pods_and_an_endpoint_and_loses_them_with_it(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
) -> None:
    backend = backends("local", HOST_PATH_BACKEND)
    api.wait_condition(backend, status="True", reason="Available")
    name = unique("share")
    api.apply(nas_share(name, namespace, backend, RULES))
    # No server image here: the share says why its server does not run, with an endpoint
    # already.
    condition = wait_reason(api, name, namespace, "ServerNotRunning")
    assert condition["status"] == "False"
    assert "nfs: " in condition["message"] and "Image" in condition["message"]
    share = api.get(NAS_SHARES, name, namespace) or {}
    server = f"stowage-nas-{name}"
    service = api.get(SERVICES, server, namespace) or {}
    address = service["spec"]["clusterIP"]
    assert share["status"]["endpoints"] == {"nfs": f"{address}:/{name}"}
    assert share["status"]["capacity"] == "2Gi"
    for resource, object_name in (
        (CONFIG_MAPS, server),
        (DEPLOYMENTS, server),
        (SERVICES, server),
        (PERSISTENT_VOLUME_CLAIMS, f"{server}-data"),
        (PERSISTENT_VOLUME_CLAIMS, name),
    ):
        found = api.get(resource, object_name, namespace) or {}
        owners = found.get("metadata", {}).get("ownerReferences") or []
        assert [o["uid"] for o in owners] == [share["metadata"]["uid"]], object_name
    volume = api.get(PERSISTENT_VOLUMES, f"nas-{share['metadata']['uid']}") or {}
    assert volume["spec"]["nfs"] == {"server": address, "path": f"/{name}"}
    wait_for(
        lambda: api.claim_phase(namespace, name) == "Bound",
        timeout=60,
        what="the claim for pods Bound to the share's PV",
    )
    assert (
        "10.244.0.0/16" in (api.get(CONFIG_MAPS, server, namespace) or {})["data"]["ganesha.conf"]
    )

    # New rules: a new ConfigMap, the same pod template (the server reloads them in place).
    deployment = api.get(DEPLOYMENTS, server, namespace) or {}
    api.apply(nas_share(name, namespace, backend, [*RULES, {"cidr": "192.0.2.0/24"}]))
    wait_for(
        lambda: (
            "192.0.2.0/24"
            in (api.get(CONFIG_MAPS, server, namespace) or {})["data"]["ganesha.conf"]
        ),
        timeout=30,
        what="the new rule in the ConfigMap",
    )
    after = api.get(DEPLOYMENTS, server, namespace) or {}
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"]

    api.delete(NAS_SHARES, name, namespace)
    wait_for(partial(api.gone, NAS_SHARES, name, namespace), timeout=60, what="share deleted")
    wait_for(
        partial(api.gone, PERSISTENT_VOLUMES, volume["metadata"]["name"]),
        timeout=60,
        what="the share's PV deleted",
    )
