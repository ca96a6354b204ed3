"""The objects that serve a NASShare, built from its spec (pure functions)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stowage.api.backend import MountSpec
from stowage.api.nasshare import NASShare
from stowage.nas import proxy
from stowage.objects import nas
from stowage.reconcilers.nasshares import lost_nodes, standby_check

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


def test_a_share_of_an_nfs_backend_proxies_the_claim_s_server_which_the_pod_fills_in() -> None:
    """FSAL VFS would export nothing from an NFS mount: the share is Ready but every client is
    told it does not exist."""
    assert "Name = VFS;" in nas.ganesha_config(share())
    template = nas.ganesha_config(dataclasses.replace(share(), data_over_nfs=True))
    assert "Name = VFS;" not in template
    assert proxy.is_proxied(template)
    served = proxy.fill_in(template, "127.0.0.1:/export/claims/team-files-0c5a")
    export = served[served.index("EXPORT {") :]
    assert 'Path = "/export/claims/team-files-0c5a/share";' in export
    assert "FSAL { Name = PROXY_V4; Srv_Addr = 127.0.0.1; }" in export
    assert "@" not in served
    with pytest.raises(proxy.DataNotOnNfsError):
        proxy.fill_in(template, "/dev/vdb")


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


def test_the_data_claim_is_shared_where_the_backend_lets_servers_on_two_nodes_mount_it() -> None:
    shared = nas.data_claim(share(), "fast", shared=True)
    assert shared["spec"]["accessModes"] == ["ReadWriteMany"]
    assert shared["spec"]["resources"]["requests"]["storage"] == "5Gi"
    single = nas.data_claim(share(), "fast", shared=False)
    assert single["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_two_replicas_are_two_server_pods_each_serving_only_while_it_holds_the_lease() -> None:
    ref = share(replicas=2, protocols=["nfs", "smb"], smb={"usersSecretRef": {"name": "u"}})
    deployment = nas.server_deployment(ref, "img", "IfNotPresent")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "stowage-nas-files"
    for container in pod["containers"]:
        args = container["args"]
        assert args[args.index("--lease") + 1] == "stowage-nas-files"
        # Both containers of a pod hold the Lease under the pod's name: active together.
        env = {variable["name"]: variable.get("valueFrom") for variable in container["env"]}
        assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert "tcpSocket" in container["readinessProbe"]
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert spread[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == nas.server_labels(ref)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_with_shared_data_the_standby_must_run_on_another_node() -> None:
    ref = share()
    shared = nas.server_deployment(ref, "img", "IfNotPresent", shared_data=True)
    spread = shared["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = spread["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == nas.server_labels(ref)
    local = nas.server_deployment(ref, "img", "IfNotPresent")["spec"]["template"]["spec"]
    assert set(local["affinity"]["podAntiAffinity"]) == {
        "preferredDuringSchedulingIgnoredDuringExecution"
    }


def test_the_servers_run_where_the_backend_s_helpers_run() -> None:
    toleration = {"key": "node.example/storage", "operator": "Exists", "effect": "NoSchedule"}
    mount = MountSpec.model_validate({"nodeSelector": {"nfs": "yes"}, "tolerations": [toleration]})
    pod = nas.server_deployment(share(), "img", "IfNotPresent", mount)["spec"]["template"]
    assert pod["spec"]["tolerations"] == [toleration]
    assert pod["spec"]["nodeSelector"] == {"nfs": "yes"}
    anywhere = nas.server_deployment(share(), "img", "IfNotPresent", MountSpec())["spec"]
    assert not {"tolerations", "nodeSelector"} & set(anywhere["template"]["spec"])


def test_the_servers_may_hold_their_own_lease_and_nothing_else() -> None:
    ref = share()
    (rule,) = nas.server_role(ref)["rules"]
    assert rule["resources"] == ["leases"] and rule["resourceNames"] == ["stowage-nas-files"]
    assert sorted(rule["verbs"]) == ["get", "patch"]
    binding = nas.server_role_binding(ref)
    assert binding["roleRef"]["name"] == nas.server_role(ref)["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stowage-nas-files", "namespace": "team"}
    ]
    assert nas.server_lease(ref)["metadata"]["name"] == "stowage-nas-files"


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


def test_a_share_is_not_ready_for_pods_until_their_claim_is_bound() -> None:
    ref = share(claim={"name": "shared-files"})
    assert (
        nas.unbound(ref, None)
        == "the claim shared-files is not made, not bound to nas-0c5a-uid yet"
    )
    pending = {"status": {"phase": "Pending"}}
    assert nas.unbound(ref, pending) == (
        "the claim shared-files is Pending, not bound to nas-0c5a-uid yet"
    )
    assert nas.unbound(ref, {"status": {"phase": "Bound"}}) is None


def smb_share(**smb: Any) -> nas.ShareRef:
    users = {"usersSecretRef": {"name": "smb-users"}, "readOnlyUsers": ["bob"], **smb}
    return share(protocols=["nfs", "smb"], smb=users)


def test_smb_users_stay_in_their_secret_which_only_the_smb_server_mounts() -> None:
    ref = smb_share()
    files = nas.config_map(ref)["data"]
    assert set(files) == {"ganesha.conf", "smb.conf"}
    assert "read list = bob" in files["smb.conf"]
    assert "path = /data/share" in files["smb.conf"]
    pod = nas.server_deployment(ref, "img", "Never")["spec"]["template"]["spec"]
    by_name = {container["name"]: container for container in pod["containers"]}
    assert set(by_name) == {"nfs", "smb"}
    mounts = {m["name"] for m in by_name["smb"]["volumeMounts"]}
    assert "users" in mounts
    assert "users" not in {m["name"] for m in by_name["nfs"]["volumeMounts"]}
    (users,) = [volume for volume in pod["volumes"] if volume["name"] == "users"]
    assert users["secret"] == {"secretName": "smb-users", "defaultMode": 0o400}


def test_each_protocol_gets_its_port_and_endpoint() -> None:
    ports = {p["name"]: p["port"] for p in nas.service(smb_share())["spec"]["ports"]}
    assert ports == {"nfs": 2049, "smb": 445}
    assert nas.endpoints(smb_share(), "10.96.0.9") == {
        "nfs": "10.96.0.9:/files",
        "smb": "//10.96.0.9/files",
    }
    smb_only = share(protocols=["smb"], smb={"usersSecretRef": {"name": "u"}}, nfs=None)
    assert [p["name"] for p in nas.service(smb_only)["spec"]["ports"]] == ["smb"]
    assert nas.endpoints(smb_only, "10.96.0.9") == {"smb": "//10.96.0.9/files"}
    assert "browseable = no" in nas.samba_config(smb_share(browseable=False))


def pod_status(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "stowage-nas-files-abc"}, "status": status}


def test_the_reason_a_server_does_not_run_is_told_as_the_kubelet_tells_it() -> None:
    creating = pod_status(
        containerStatuses=[{"name": "nfs", "state": {"waiting": {"reason": "ContainerCreating"}}}]
    )
    assert nas.server_trouble([creating]) is None
    assert nas.server_trouble([]) is None
    pulling = pod_status(
        containerStatuses=[
            {
                "name": "nfs",
                "state": {
                    "waiting": {"reason": "ErrImageNeverPull", "message": "image not present"}
                },
            },
            {"name": "smb", "state": {"running": {}}},
        ]
    )
    assert nas.server_trouble([pulling]) == "nfs: ErrImageNeverPull: image not present"
    unscheduled = pod_status(
        conditions=[
            {"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available"}
        ]
    )
    assert nas.server_trouble([unscheduled]) == "not scheduled: 0/1 nodes are available"


def test_a_service_reachable_from_outside_keeps_the_clients_address() -> None:
    assert "externalTrafficPolicy" not in nas.service(share())["spec"]
    for kind in ("NodePort", "LoadBalancer"):
        exposed = nas.service(share(service={"type": kind}))["spec"]
        assert exposed["type"] == kind
        assert exposed["externalTrafficPolicy"] == "Local"


def running_pod(node: str = "node-a", **metadata: Any) -> dict[str, Any]:
    return {"metadata": metadata, "spec": {"nodeName": node}, "status": {"phase": "Running"}}


def test_a_share_without_its_standby_is_degraded() -> None:
    two = share(replicas=2)
    both = [running_pod(name="a"), running_pod(name="b")]
    assert standby_check(two, both).status == "False"
    leaving = [running_pod(name="a"), running_pod(name="b", deletionTimestamp="now")]
    degraded = standby_check(two, leaving)
    assert (degraded.status, degraded.reason) == ("True", "NoStandby")
    assert degraded.message == "1 of 2 server pods running: no standby to take over"
    assert standby_check(share(), both[:1]).status == "False"


def test_a_server_pod_on_a_lost_node_is_no_standby_though_its_phase_still_says_running() -> None:
    """The API keeps a lost node's pods Running until they are evicted, minutes later."""
    both = [running_pod("vm1", name="a"), running_pod("vm2", name="b")]
    degraded = standby_check(share(replicas=2), both, lost=frozenset({"vm2"}))
    assert (degraded.status, degraded.reason) == ("True", "NoStandby")
    assert degraded.message == "1 of 2 server pods running (node vm2 lost): no standby to take over"
    assert standby_check(share(replicas=2), both, lost=frozenset({"vm3"})).status == "False"


def test_lost_nodes_are_those_whose_kubelet_is_not_ready() -> None:
    def node(name: str, ready: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }

    nodes = [node("vm1", "True"), node("vm2", "Unknown"), node("vm3", "False")]
    assert lost_nodes(nodes) == {"vm2", "vm3"}


@pytest.mark.parametrize(
    ("cidr", "clients"),
    [
        ("0.0.0.0/0", "0.0.0.0/1, 128.0.0.0/1"),
        ("::/0", "::/1, 8000::/1"),
        ("10.244.0.0/16", "10.244.0.0/16"),
    ],
)
def test_everyone_is_told_to_ganesha_as_two_halves(cidr: str, clients: str) -> None:
    """Ganesha matches no client for a /0 (seen against nfs-ganesha 4.3: NFS4ERR_NOENT)."""
    assert nas.ganesha_clients(cidr) == clients
