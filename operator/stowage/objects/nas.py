"""The objects that serve a NASShare, in the share's namespace and owned by it (but the PV).

    stowage-nas-<share>-data   PVC on the backend's StorageClass: the share's data and the NFS
                               server's recovery state
    stowage-nas-<share>        ConfigMap (ganesha.conf: the export and its client rules),
                               Deployment (the servers), Service (2049)
    <spec.claim.name>          PVC bound to a PV of the nfs source at the Service, for pods
    nas-<share uid>            that PV (cluster-scoped)

The export configuration holds no secrets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from stowage.api.nasshare import NASShareSpec, NfsAccess, NfsClientRule, NfsSquash
from stowage.drivers.base import MANAGED_BY, MANAGED_BY_LABEL

Json = dict[str, Any]

NFS_PORT = 2049
SHARE_LABEL = "stowage.io/nasshare"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAS_COMPONENT = "nas-server"
# Inside the server pod: the data claim, and the export configuration from the ConfigMap.
DATA_MOUNT = "/data"
EXPORTED_DIRECTORY = f"{DATA_MOUNT}/share"
RECOVERY_DIRECTORY = f"{DATA_MOUNT}/nfs-recovery"
CONFIG_MOUNT = "/etc/stowage-nas"
GANESHA_CONFIG = "ganesha.conf"
# Short leases: a client of a restarted or replaced server is back within a lease or two.
LEASE_SECONDS = 10
GRACE_SECONDS = 15

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


def _client_block(rule: NfsClientRule) -> str:
    return (
        "    CLIENT {\n"
        f"        Clients = {rule.cidr};\n"
        "        Protocols = 4;\n"
        f"        Access_Type = {ACCESS_TYPES[rule.access]};\n"
        f"        Squash = {SQUASH[rule.squash]};\n"
        "    }\n"
    )


def ganesha_config(share: ShareRef) -> str:
    """NFSv4 (4.0 for libnfs clients, 4.1 and 4.2), FSAL VFS on the data claim; a client that
    matches no rule is refused (the export's own Access_Type is None)."""
    rules = share.spec.nfs.clients if share.spec.nfs is not None else []
    clients = "".join(_client_block(rule) for rule in rules)
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
    Path = "{EXPORTED_DIRECTORY}";
    Pseudo = "{share.pseudo_path}";
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    Access_Type = None;
    FSAL {{ Name = VFS; }}
{clients}}}
"""


def rules_fingerprint(share: ShareRef) -> str:
    return hashlib.sha256(ganesha_config(share).encode()).hexdigest()[:16]


def server_labels(share: ShareRef) -> dict[str, str]:
    return {COMPONENT_LABEL: NAS_COMPONENT, **share_labels(share)}


def server_selector(share: ShareRef) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(server_labels(share).items()))


def config_map(share: ShareRef) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(share, share.server_name),
        "data": {GANESHA_CONFIG: ganesha_config(share)},
    }


def data_claim(share: ShareRef, storage_class: str) -> Json:
    # One server at a time mounts the data (the standby of replicas 2 too, later): RWX only
    # where two servers may run.
    access_mode = "ReadWriteMany" if share.spec.replicas > 1 else "ReadWriteOnce"
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


def server_deployment(share: ShareRef, image: str, image_pull_policy: str) -> Json:
    selector = server_labels(share)
    container = {
        "name": "nfs",
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "args": [
            "nas-server",
            "--config",
            f"{CONFIG_MOUNT}/{GANESHA_CONFIG}",
            "--exported",
            EXPORTED_DIRECTORY,
            "--recovery",
            RECOVERY_DIRECTORY,
        ],
        "env": [{"name": "STOWAGE_LOG_FORMAT", "value": "json"}],
        "ports": [{"name": "nfs", "containerPort": NFS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": NFS_PORT}, "periodSeconds": 2},
        # FSAL VFS opens files by handle (open_by_handle_at), which needs DAC_READ_SEARCH.
        "securityContext": {
            "capabilities": {"add": ["DAC_READ_SEARCH"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(share, share.server_name, **{COMPONENT_LABEL: NAS_COMPONENT}),
        "spec": {
            "replicas": 1,
            # The data claim is mounted by one server at a time.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            # The export rules are not part of the template: a change is reloaded by the
            # running server (nas-server), which keeps its clients.
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "data",
                            "persistentVolumeClaim": {"claimName": share.data_claim_name},
                        },
                        {"name": "config", "configMap": {"name": share.server_name}},
                    ],
                },
            },
        },
    }


def service(share: ShareRef) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(share, share.server_name),
        "spec": {
            "type": share.spec.service.type.value,
            "selector": server_labels(share),
            "ports": [{"name": "nfs", "port": NFS_PORT, "targetPort": "nfs", "protocol": "TCP"}],
        },
    }


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
            "mountOptions": ["nfsvers=4.1"],
            "nfs": {"server": server, "path": share.pseudo_path},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": share.namespace,
                "name": claim,
            },
        },
    }


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
