"""The objects that serve a NASShare, in the share's namespace and owned by it (but the PV).

    stowage-nas-<share>-data   PVC on the backend's StorageClass: the share's data and the NFS
                               server's recovery state
    stowage-nas-<share>        ConfigMap (ganesha.conf: the export and its client rules;
                               smb.conf: the share and its read-only users), Deployment (the
                               servers), Service (2049 and/or 445), Lease (which server pod
                               is the active one), and the ServiceAccount, Role and RoleBinding
                               with which the server pods hold that Lease
    <spec.claim.name>          PVC bound to a PV of the nfs source at the Service, for pods
    nas-<share uid>            that PV (cluster-scoped)

The configuration holds no secrets: SMB passwords stay in the user's Secret, which only the
SMB server container mounts.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stowage.api.backend import MountSpec
from stowage.api.nasshare import (
    NASShareSpec,
    NfsAccess,
    NfsClientRule,
    NfsSquash,
    ServiceType,
    ShareProtocol,
)
from stowage.drivers.base import HOSTNAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from stowage.objects.metadata import mount_placement

Json = dict[str, Any]

NFS_PORT = 2049
SMB_PORT = 445
SHARE_LABEL = "stowage.io/nasshare"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAS_COMPONENT = "nas-server"
# Inside the server pod: the data claim, and the export configuration from the ConfigMap.
DATA_MOUNT = "/data"
EXPORTED_DIRECTORY = f"{DATA_MOUNT}/share"
RECOVERY_DIRECTORY = f"{DATA_MOUNT}/nfs-recovery"
# Where the data claim is an NFS export, the server pod fills these in from its mount of it
# (stowage.nas.proxy): the claim's NFS server, and the claim's directory there.
DATA_SERVER = "@DATA_SERVER@"
DATA_SERVER_PATH = "@DATA_SERVER_PATH@"
CONFIG_MOUNT = "/etc/stowage-nas"
GANESHA_CONFIG = "ganesha.conf"
SAMBA_CONFIG = "smb.conf"
SMB_USERS_MOUNT = "/etc/stowage-smb-users"
# Short leases: a client of a restarted or replaced server is back within a lease or two.
LEASE_SECONDS = 10
GRACE_SECONDS = 15
# The kernel client reconnects (and so reaches the standby through the Service) only after a
# major timeout: timeo x (1 + 2 + ... + retrans+1). With the defaults (60 s, 2) that is 6 minutes
# after the active server's node goes; with these, 30 s.
SHARE_MOUNT_OPTIONS = ("nfsvers=4.1", "timeo=50", "retrans=2")

# The server containers' downward-API environment: who holds the share's Lease.
POD_IDENTITY = (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"))
# On the server pods: the fingerprint of the rules they are to serve (see the reconciler).
RULES_ANNOTATION = "stowage.io/export-rules"

ACCESS_TYPES = {NfsAccess.READ_WRITE: "RW", NfsAccess.READ_ONLY: "RO"}
SQUASH = {
    NfsSquash.ROOT_SQUASH: "Root_Squash",
    NfsSquash.NO_SQUASH: "No_Root_Squash",
    NfsSquash.ALL_SQUASH: "All_Squash",
}


@dataclass(frozen=True)
class ShareRef:
    """A NASShare as the builders see it."""

    namespace: str
    name: str
    uid: str
    spec: NASShareSpec
    # The data claim is an NFS export (an nfs backend's): Ganesha proxies it.
    data_over_nfs: bool = False

    @property
    def server_name(self) -> str:
        return f"stowage-nas-{self.name}"

    @property
    def data_claim_name(self) -> str:
        return f"{self.server_name}-data"

    @property
    def volume_name(self) -> str:
        return share_volume_name(self.uid)

    @property
    def pseudo_path(self) -> str:
        """Where NFSv4 clients find the export."""
        return f"/{self.name}"


def share_volume_name(share_uid: str) -> str:
    return f"nas-{share_uid}"


def share_labels(share: ShareRef) -> dict[str, str]:
    return {SHARE_LABEL: share.name, MANAGED_BY_LABEL: MANAGED_BY}


def _metadata(share: ShareRef, name: str, **labels: str) -> Json:
    """Metadata of an object in the share's namespace (the reconciler adds the owner)."""
    return {"name": name, "namespace": share.namespace, "labels": {**share_labels(share), **labels}}


def ganesha_clients(cidr: str) -> str:
    """CIDR as Ganesha's `Clients` matches it. Ganesha matches no client at all for a /0
    (0.0.0.0/0, ::/0: its mask is computed with a shift by the full width), so everyone is the
    two halves of the address space."""
    network = ipaddress.ip_network(cidr, strict=False)
    if network.prefixlen == 0:
        return ", ".join(str(half) for half in network.subnets(prefixlen_diff=1))
    return cidr


def _client_block(rule: NfsClientRule) -> str:
    return (
        "    CLIENT {\n"
        f"        Clients = {ganesha_clients(rule.cidr)};\n"
        "        Protocols = 4;\n"
        f"        Access_Type = {ACCESS_TYPES[rule.access]};\n"
        f"        Squash = {SQUASH[rule.squash]};\n"
        "    }\n"
    )


def ganesha_config(share: ShareRef) -> str:
    """NFSv4 (4.0 for libnfs clients, 4.1 and 4.2), FSAL VFS on the data claim, or PROXY_V4 to
    its server where the claim is an NFS export (`stowage.nas.proxy`); a client that matches no
    rule is refused (the export's own Access_Type is None)."""
    rules = share.spec.nfs.clients if share.spec.nfs is not None else []
    clients = "".join(_client_block(rule) for rule in rules)
    if share.data_over_nfs:
        exported = EXPORTED_DIRECTORY.removeprefix(DATA_MOUNT)
        path = f"{DATA_SERVER_PATH}{exported}"
        fsal = f"Name = PROXY_V4; Srv_Addr = {DATA_SERVER};"
    else:
        path, fsal = EXPORTED_DIRECTORY, "Name = VFS;"
    return f"""NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {NFS_PORT};
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSv4 {{
    Minor_Versions = 0, 1, 2;
    Lease_Lifetime = {LEASE_SECONDS};
    Grace_Period = {GRACE_SECONDS};
    RecoveryBackend = fs;
    RecoveryRoot = "{RECOVERY_DIRECTORY}";
}}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = "{path}";
    Pseudo = "{share.pseudo_path}";
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    Access_Type = None;
    FSAL {{ {fsal} }}
{clients}}}
"""


def rules_fingerprint(share: ShareRef) -> str:
    """Of the server configuration the ConfigMap holds (which names no secret)."""
    files = config_map(share)["data"]
    text = "".join(f"{name}\0{files[name]}\0" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def server_labels(share: ShareRef) -> dict[str, str]:
    return {COMPONENT_LABEL: NAS_COMPONENT, **share_labels(share)}


def server_selector(share: ShareRef) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(server_labels(share).items()))


def samba_config(share: ShareRef) -> str:
    """A standalone server with one share. Users are the keys of the share's Secret (their
    passwords never appear here); read-only users are Samba's read list. Every user acts on the
    data as its owner, root, as NFS clients without root squash do, so that a file written over
    one protocol can be read and changed over the other."""
    smb = share.spec.smb
    browseable = "yes" if smb is None or smb.browseable else "no"
    read_list = " ".join(smb.read_only_users) if smb is not None else ""
    return f"""[global]
    server role = standalone server
    security = user
    map to guest = never
    passdb backend = tdbsam
    smb ports = {SMB_PORT}
    disable netbios = yes
    server min protocol = SMB2_10
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    log level = 1

[{share.name}]
    path = {EXPORTED_DIRECTORY}
    browseable = {browseable}
    read only = no
    read list = {read_list}
    force user = root
    force group = root
    create mask = 0664
    directory mask = 0775
"""


def serves(share: ShareRef, protocol: ShareProtocol) -> bool:
    return protocol in share.spec.protocols


def config_map(share: ShareRef) -> Json:
    data = {}
    if serves(share, ShareProtocol.NFS):
        data[GANESHA_CONFIG] = ganesha_config(share)
    if serves(share, ShareProtocol.SMB):
        data[SAMBA_CONFIG] = samba_config(share)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(share, share.server_name),
        "data": data,
    }


def data_claim(share: ShareRef, storage_class: str, *, shared: bool) -> Json:
    """`shared`: ReadWriteMany, so that a standby server pod may run on another node (only the
    active one serves the data); otherwise both run where the claim is mounted."""
    access_mode = "ReadWriteMany" if shared else "ReadWriteOnce"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(share, share.data_claim_name),
        "spec": {
            "storageClassName": storage_class,
            "accessModes": [access_mode],
            "resources": {"requests": {"storage": share.spec.size}},
        },
    }


def _server_container(
    share: ShareRef, protocol: ShareProtocol, port: int, config: str, image: str, pull: str
) -> Json:
    return {
        "name": protocol.value,
        "image": image,
        "imagePullPolicy": pull,
        "args": [
            "nas-server",
            protocol.value,
            "--config",
            f"{CONFIG_MOUNT}/{config}",
            "--exported",
            EXPORTED_DIRECTORY,
            "--recovery",
            RECOVERY_DIRECTORY,
            "--lease",
            share.server_name,
        ],
        "env": [
            {"name": "STOWAGE_LOG_FORMAT", "value": "json"},
            *(
                {"name": variable, "valueFrom": {"fieldRef": {"fieldPath": field}}}
                for variable, field in POD_IDENTITY
            ),
        ],
        "ports": [{"name": protocol.value, "containerPort": port, "protocol": "TCP"}],
        # Only the active server pod listens, so only it is Ready and behind the Service.
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        ],
    }


def _spread_over_nodes(share: ShareRef, shared_data: bool) -> Json:
    """A standby on another node than the active server survives that node. With shared data
    (a ReadWriteMany data claim) it must run elsewhere: otherwise both pods, scheduled at once
    when the first node can mount the claim, land there. A node-local data claim keeps both on
    its node (the rule is only a preference then)."""
    term = {
        "topologyKey": HOSTNAME_LABEL,
        "labelSelector": {"matchLabels": server_labels(share)},
    }
    if shared_data:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}
            ]
        }
    }


def server_deployment(
    share: ShareRef,
    image: str,
    image_pull_policy: str,
    mount: MountSpec | None = None,
    *,
    shared_data: bool = False,
) -> Json:
    """The share's server pods; `mount` is the backend's: the servers run on the nodes its
    nodeSelector selects and tolerate its taints, where the data claim can be mounted.
    `shared_data`: the data claim is ReadWriteMany (`data_claim`)."""
    placement = mount_placement(mount) if mount is not None else {}
    selector = server_labels(share)
    containers = []
    volumes: list[Json] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": share.data_claim_name}},
        {"name": "config", "configMap": {"name": share.server_name}},
    ]
    if serves(share, ShareProtocol.NFS):
        nfs = _server_container(
            share, ShareProtocol.NFS, NFS_PORT, GANESHA_CONFIG, image, image_pull_policy
        )
        # FSAL VFS opens files by handle (open_by_handle_at), which needs DAC_READ_SEARCH.
        nfs["securityContext"] = {"capabilities": {"add": ["DAC_READ_SEARCH"]}}
        containers.append(nfs)
    if serves(share, ShareProtocol.SMB) and share.spec.smb is not None:
        smb = _server_container(
            share, ShareProtocol.SMB, SMB_PORT, SAMBA_CONFIG, image, image_pull_policy
        )
        smb["args"] += ["--users", SMB_USERS_MOUNT]
        smb["volumeMounts"].append(
            {"name": "users", "mountPath": SMB_USERS_MOUNT, "readOnly": True}
        )
        volumes.append(
            {
                "name": "users",
                "secret": {
                    "secretName": share.spec.smb.users_secret_ref.name,
                    "defaultMode": 0o400,
                },
            }
        )
        containers.append(smb)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(share, share.server_name, **{COMPONENT_LABEL: NAS_COMPONENT}),
        "spec": {
            "replicas": share.spec.replicas,
            # A rolling update would wait for new pods to be Ready, which standbys never are.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            # Neither the rules nor the users are part of the template: a change is reloaded
            # by the running servers (nas-server), which keep their clients.
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "serviceAccountName": share.server_name,
                    "terminationGracePeriodSeconds": 10,
                    "affinity": _spread_over_nodes(share, shared_data),
                    **placement,
                    "containers": containers,
                    "volumes": volumes,
                },
            },
        },
    }


def server_lease(share: ShareRef) -> Json:
    """Made empty; the server pods take it (stowage.nas.election)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": _metadata(share, share.server_name),
        "spec": {},
    }


def server_role(share: ShareRef) -> Json:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(share, share.server_name),
        "rules": [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [share.server_name],
                "verbs": ["get", "patch"],
            }
        ],
    }


def server_service_account(share: ShareRef) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(share, share.server_name),
    }


def server_role_binding(share: ShareRef) -> Json:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(share, share.server_name),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": share.server_name,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": share.server_name, "namespace": share.namespace}
        ],
    }


def service(share: ShareRef) -> Json:
    spec: Json = {}
    if share.spec.service.type is not ServiceType.CLUSTER_IP:
        # The client rules are about client addresses: traffic from outside must reach the
        # server with its source address, not the node's (no SNAT to another node).
        spec["externalTrafficPolicy"] = "Local"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(share, share.server_name),
        "spec": {
            **spec,
            "type": share.spec.service.type.value,
            "selector": server_labels(share),
            "ports": [
                {
                    "name": protocol.value,
                    "port": port,
                    "targetPort": protocol.value,
                    "protocol": "TCP",
                }
                for protocol, port in ((ShareProtocol.NFS, NFS_PORT), (ShareProtocol.SMB, SMB_PORT))
                if serves(share, protocol)
            ],
        },
    }


def server_trouble(pods: Sequence[Json]) -> str | None:
    """Why the server pods do not run, as the scheduler and the kubelet say (an image that
    cannot be pulled, a crashing server, no node), or None when they are just starting."""
    problems = []
    for pod in pods:
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                problems.append(
                    f"not scheduled: {condition.get('message') or condition.get('reason')}"
                )
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in (None, "ContainerCreating", "PodInitializing"):
                continue
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            problems.append(f"{container['name']}: {waiting['reason']}{detail}")
    return "; ".join(problems)[:1000] or None


def endpoints(share: ShareRef, address: str) -> dict[str, str]:
    """What a user pastes into a client, by protocol."""
    found = {}
    if serves(share, ShareProtocol.NFS):
        found["nfs"] = f"{address}:{share.pseudo_path}"
    if serves(share, ShareProtocol.SMB):
        found["smb"] = f"//{address}/{share.name}"
    return found


def share_volume(share: ShareRef, server: str) -> Json:
    """The PV for in-cluster consumers: the export, through the Service's cluster IP (the
    kubelet mounts with the node's resolver, which does not know Service names)."""
    claim = share.spec.claim.resolved_name(share.name)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": share.volume_name, "labels": share_labels(share)},
        "spec": {
            "capacity": {"storage": share.spec.size},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",  # the data is the data claim's
            "storageClassName": "",
            "mountOptions": list(SHARE_MOUNT_OPTIONS),
            "nfs": {"server": server, "path": share.pseudo_path},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": share.namespace,
                "name": claim,
            },
        },
    }


def unbound(share: ShareRef, share_claim: Json | None) -> str | None:
    """Why the claim pods mount is not usable yet, if it is not."""
    phase = ((share_claim or {}).get("status") or {}).get("phase")
    if phase == "Bound":
        return None
    name = share.spec.claim.resolved_name(share.name)
    return f"the claim {name} is {phase or 'not made'}, not bound to {share.volume_name} yet"


def share_claim(share: ShareRef) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(share, share.spec.claim.resolved_name(share.name)),
        "spec": {
            "storageClassName": "",
            "volumeName": share.volume_name,
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": share.spec.size}},
        },
    }
