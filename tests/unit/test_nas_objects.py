"""The objects that serve a NASShare, built from its spec (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from stowage.api.nasshare import NASShare
from stowage.objects import nas

pytestmark = pytest.mark.unit

RULES = [
    {"cidr": "10.244.0.0/16", "access": "ReadWrite", "squash": "NoSquash"},
    {"cidr": "192.0.2.7/32", "access": "ReadOnly"},
]


def share(**spec: Any) -> nas.ShareRef:
    full = {"backend": "fast", "size": "5Gi", "protocols": ["nfs"], "nfs": {"clients": RULES}}
    model = NASShare.model_validate({"spec": {**full, **spec}})
    return nas.ShareRef("team", "files", "0c5a-uid", model.spec)


def test_each_client_rule_is_an_export_client_and_nobody_else_gets_in() -> None:
    config = nas.ganesha_config(share())
    export = config[config.index("EXPORT {") :]
    assert "Access_Type = None;" in export.split("CLIENT")[0]  # no rule, no access
    clients = export.split("CLIENT {")[1:]
    assert len(clients) == 2
    assert "Clients = 10.244.0.0/16;" in clients[0]
    assert "Access_Type = RW;" in clients[0] and "Squash = No_Root_Squash;" in clients[0]
    assert "Clients = 192.0.2.7/32;" in clients[1]
    assert "Access_Type = RO;" in clients[1] and "Squash = Root_Squash;" in clients[1]
    assert 'Pseudo = "/files";' in export
    assert f'Path = "{nas.EXPORTED_DIRECTORY}";' in export
    assert f'RecoveryRoot = "{nas.RECOVERY_DIRECTORY}";' in config
    assert config.count("{") == config.count("}")


def test_a_rule_change_changes_the_config_map_but_not_the_server_pod() -> None:
    before, after = share(), share(nfs={"clients": RULES[:1]})
    assert nas.config_map(before) != nas.config_map(after)
    image = ("localhost/stowage/helper:dev", "Never")
    assert nas.server_deployment(before, *image) == nas.server_deployment(after, *image)


def test_the_server_serves_the_data_claim_with_the_config_map() -> None:
    deployment = nas.server_deployment(share(), "img", "IfNotPresent")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "nas-server"
    assert "privileged" not in container["securityContext"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "stowage-nas-files-data"
    assert volumes["config"]["configMap"]["name"] == "stowage-nas-files"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_the_data_claim_is_shared_only_when_two_servers_may_mount_it() -> None:
    assert nas.data_claim(share(), "fast")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert nas.data_claim(share(replicas=2), "fast")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_pods_get_a_claim_bound_to_the_export_through_the_service_address() -> None:
    ref = share(claim={"name": "shared-files"})
    volume = nas.share_volume(ref, "10.96.0.42")
    assert volume["metadata"]["name"] == "nas-0c5a-uid"
    assert "ownerReferences" not in volume["metadata"]  # cluster-scoped: no namespaced owner
    assert volume["spec"]["nfs"] == {"server": "10.96.0.42", "path": "/files"}
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["claimRef"]["name"] == "shared-files"
    claim = nas.share_claim(ref)
    assert claim["metadata"]["name"] == "shared-files"
    assert claim["spec"]["volumeName"] == "nas-0c5a-uid"
    assert claim["spec"]["storageClassName"] == ""
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
