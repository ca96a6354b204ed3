"""iscsi backends against a real target: tgt on a test host, checked with libiscsi.

The operator runs as a process on this machine; the PV controller binds. What a node would do
with the PV (log in with the CHAP Secret, read the LUN) is done here by libiscsi's userspace
initiator from the PV's own `iscsi` source: this machine has no kernel iSCSI initiator, so no pod
mounts a LUN in this tier (the kind path does).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from itkit import Api, OperatorProcess, unique, wait_for
from test_provisioning import bound_volume, claim_manifest

from stowage.kube import Json
from stowage.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, SECRETS
from stowage_e2e.fixtures import TestHostFactory
from stowage_e2e.iscsi_target import MIB, IscsiLoginError, TgtTarget, libiscsi_capacity

pytestmark = pytest.mark.integration

IQN = "iqn.2026-11.io.stowage.e2e:pool"
LUN_SIZES = {1: 64 * MIB, 2: 16 * MIB, 3: 32 * MIB}
CHAP_USER = "stowage-e2e"
CHAP_PASSWORD = "chap-" + "a1b2c3d4e5f6"
IMMEDIATE = {"storageClass": {"volumeBindingMode": "Immediate"}}


@pytest.fixture
def target(test_hosts: TestHostFactory) -> Iterator[TgtTarget]:
    tgt = TgtTarget.start(test_hosts.one(), IQN, LUN_SIZES, user=CHAP_USER, password=CHAP_PASSWORD)
    yield tgt
    tgt.stop()


def chap_secret(api: Api, namespace: str, user: str, password: str) -> str:
    name = unique("chap")
    keys = {"node.session.auth.username": user, "node.session.auth.password": password}
    api.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "kubernetes.io/iscsi-chap",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
        }
    )
    return name


def pool_spec(target: TgtTarget, secret: str, namespace: str, **iscsi: Any) -> dict[str, Any]:
    return {
        "iscsi": {
            "portals": [target.portal],
            "iqn": target.iqn,
            "luns": [{"lun": lun, "size": f"{size // MIB}Mi"} for lun, size in LUN_SIZES.items()],
            "chapSecretRef": {"name": secret, "namespace": namespace},
            **iscsi,
        },
        **IMMEDIATE,
    }


def login_as_a_node_would(api: Api, volume: Json) -> int:
    """The LUN's capacity, read over iSCSI from the PV's source with its Secret's CHAP keys."""
    source = volume["spec"]["iscsi"]
    assert source["chapAuthSession"] is True
    ref = source["secretRef"]
    secret = api.get(SECRETS, ref["name"], ref["namespace"]) or {}
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return libiscsi_capacity(
        source["targetPortal"],
        source["iqn"],
        source["lun"],
        user=data["node.session.auth.username"],
        password=data["node.session.auth.password"],
    )


def test_claims_get_the_smallest_free_lun_a_real_initiator_logs_in_to(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    target: TgtTarget,
) -> None:
    secret = chap_secret(api, namespace, CHAP_USER, CHAP_PASSWORD)
    name = backends("tgt-pool", pool_spec(target, secret, namespace))
    api.wait_condition(name, status="True", reason="Available")

    expected = {"twenty": ("20Mi", 3), "ten": ("10Mi", 2)}
    volumes: dict[str, Json] = {}
    for claim, (size, lun) in expected.items():
        api.apply(claim_manifest(claim, namespace, name, size=size))
        volume = bound_volume(api, namespace, claim)
        source = volume["spec"]["iscsi"]
        assert source["lun"] == lun, f"{claim} ({size}) got LUN {source['lun']}"
        assert source["targetPortal"] == target.portal
        assert source["iqn"] == IQN
        assert source["secretRef"] == {"name": secret, "namespace": namespace}
        assert volume["spec"]["capacity"]["storage"] == f"{LUN_SIZES[lun] // MIB}Mi"
        assert login_as_a_node_would(api, volume) == LUN_SIZES[lun]
        volumes[claim] = volume
    # The Secret's keys are what the target checks: a wrong password is refused.
    with pytest.raises(IscsiLoginError, match="Authentication failure"):
        target.capacity(2, password="not-the-secret-1")

    # 100Mi fits no LUN (only LUN 1, 64 MiB, is free): Pending, with an Event saying so.
    api.apply(claim_manifest("huge", namespace, name, size="100Mi"))
    failed = wait_for(
        lambda: [
            e
            for e in api.events("PersistentVolumeClaim", "huge", namespace)
            if e["reason"] == "ProvisioningFailed" and "no free LUN" in e["message"]
        ],
        timeout=30,
        what="a ProvisioningFailed Event for the 100Mi claim",
    )
    assert failed[0]["type"] == "Warning"
    assert "largest free is 64Mi" in failed[0]["message"], failed[0]["message"]
    assert api.claim_phase(namespace, "huge") == "Pending"
    api.delete(PERSISTENT_VOLUME_CLAIMS, "huge", namespace)

    # onDelete Delete: the released volume goes and its LUN is free for the next claim.
    ten = volumes["ten"]["metadata"]["name"]
    api.delete(PERSISTENT_VOLUME_CLAIMS, "ten", namespace)
    wait_for(partial(api.gone, PERSISTENT_VOLUMES, ten), timeout=60, what=f"{ten} deleted")
    api.apply(claim_manifest("again", namespace, name, size="12Mi"))
    again = bound_volume(api, namespace, "again")
    assert again["spec"]["iscsi"]["lun"] == 2
    assert login_as_a_node_would(api, again) == LUN_SIZES[2]
    assert {v["spec"]["iscsi"]["lun"] for v in api.volumes_of(name)} == {2, 3}
    for claim in ("twenty", "again"):
        api.delete(PERSISTENT_VOLUME_CLAIMS, claim, namespace)
    wait_for(lambda: not api.volumes_of(name), timeout=60, what="the volumes reclaimed")
    assert CHAP_PASSWORD not in operator.log()


def test_bad_input_is_reported_on_the_backend(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    target: TgtTarget,
) -> None:
    # The CHAP Secret does not exist (yet).
    secret = unique("chap")
    name = backends("tgt-nosecret", pool_spec(target, secret, namespace))
    missing = api.wait_condition(name, status="False", reason="SecretMissing")
    assert f"{namespace}/{secret}" in missing["message"]

    # Wiping a LUN would need an initiator the operator does not have: refused, not faked.
    wipe = backends("tgt-wipe", pool_spec(target, secret, namespace, wipeOnDelete=True))
    invalid = api.wait_condition(wipe, status="False", reason="InvalidSpec")
    assert "wipeOnDelete" in invalid["message"]

    # The portal is probed with a TCP connect from the operator: Degraded while it fails.
    secret = chap_secret(api, namespace, CHAP_USER, CHAP_PASSWORD)
    probed = backends("tgt-probed", pool_spec(target, secret, namespace))
    api.wait_condition(probed, status="True", reason="Available")
    wait_for(lambda: degraded(api, probed) == ("False", "AsExpected"), what="not Degraded")
    target.host.cut_off()
    try:
        wait_for(
            lambda: degraded(api, probed)[1] == "PortalUnreachable",
            timeout=30,
            what="Degraded PortalUnreachable while the target's host is cut off",
        )
        message = (api.condition(probed, "Degraded") or {})["message"]
        assert f"{target.portal}: no answer within 2 s" in message, message
    finally:
        target.host.restore()
    wait_for(lambda: degraded(api, probed) == ("False", "AsExpected"), what="Degraded cleared")
    refused = backends(
        "tgt-refused", pool_spec(target, secret, namespace, portals=[f"{target.host.ip}:3261"])
    )
    wait_for(
        lambda: degraded(api, refused)[1] == "PortalUnreachable",
        what="Degraded PortalUnreachable for a port nothing listens on",
    )
    message = (api.condition(refused, "Degraded") or {})["message"]
    assert f"{target.host.ip}:3261: connection refused" in message, message
    # What the operator cannot see: a wrong CHAP password (only a login would tell).


def degraded(api: Api, backend: str) -> tuple[str, str]:
    condition = api.condition(backend, "Degraded") or {}
    return condition.get("status", ""), condition.get("reason", "")
