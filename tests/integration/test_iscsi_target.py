"""iscsi backends against a real target: tgt on a test host, checked with libiscsi.

The operator runs as a process on this machine; the PV controller binds. What a node would do
with the PV (log in with the CHAP Secret, read the LUN) is done here by libiscsi's userspace
initiator from the PV's own `iscsi` source: this machine has no kernel iSCSI initiator, so no pod
mounts a LUN in this tier (the kind path does).
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from itkit import Api, OperatorProcess, unique, wait_for
from test_provisioning import bound_volume, claim_manifest

from stowage.clients.iscsi import Chap, LunAddress, WipeError, wipe_lun
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
Backends = Callable[[str, dict[str, Any]], str]


@pytest.fixture
def target(test_hosts: TestHostFactory) -> Iterator[TgtTarget]:
    tgt = TgtTarget.start(test_hosts.one(), IQN, LUN_SIZES, user=CHAP_USER, password=CHAP_PASSWORD)
    yield tgt
    tgt.stop()


def chap_secret(api: Api, namespace: str, user: str, password: str) -> str:
    return chap_secret_named(api, namespace, unique("chap"), user, password)


def chap_secret_named(api: Api, namespace: str, name: str, user: str, password: str) -> str:
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
    reclaim(api, namespace, name, "twenty", "again")
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


PATTERN = b"stowage-data-"


def reclaim(api: Api, namespace: str, backend: str, *claims: str) -> None:
    """Deletes the claims and waits until the backend has no volume left."""
    for claim in claims:
        api.delete(PERSISTENT_VOLUME_CLAIMS, claim, namespace)
    wait_for(lambda: not api.volumes_of(backend), timeout=60, what="the volumes reclaimed")


@dataclass(frozen=True)
class WipingPool:
    """An Available backend of the target with wipeOnDelete: true, and what tests use of it."""

    api: Api
    operator: OperatorProcess
    namespace: str
    target: TgtTarget
    name: str
    secret: str


@pytest.fixture
def wiping_pool(
    api: Api, backends: Backends, namespace: str, target: TgtTarget, operator: OperatorProcess
) -> Callable[[str], WipingPool]:
    """Makes the backend, its CHAP Secret holding the given password."""

    def make(password: str) -> WipingPool:
        secret = chap_secret(api, namespace, CHAP_USER, password)
        name = backends("tgt-wipe", pool_spec(target, secret, namespace, wipeOnDelete=True))
        api.wait_condition(name, status="True", reason="Available")
        return WipingPool(api, operator, namespace, target, name, secret)

    return make


def fill_with_pattern(path: Path, size: int) -> None:
    """Writes non-zero data over the whole LUN, on the target's side (its backing file)."""
    path.write_bytes((PATTERN * (size // len(PATTERN) + 1))[:size])


def is_all_zeros(path: Path, size: int) -> bool:
    data = path.read_bytes()
    return len(data) == size and data == bytes(size)


def volume_events(api: Api, volume: str) -> list[Json]:
    # Events of cluster-scoped objects go to the namespace "default".
    return api.events("PersistentVolume", volume, "default")


def test_the_wipe_zeroes_a_lun_through_the_first_portal_that_lets_it_in(
    target: TgtTarget,
) -> None:
    """libiscsi from this machine, as the operator does it (no cluster object involved)."""
    fill_with_pattern(target.backing_file(3), LUN_SIZES[3])
    closed = f"{target.host.ip}:3261"
    address = LunAddress((closed, target.portal), IQN, 3)
    with pytest.raises(WipeError, match="the target refused the login") as refused:
        wipe_lun(address, Chap(CHAP_USER, "not-the-secret-1"))
    assert f"{closed}: the portal cannot be reached" in str(refused.value)
    assert "not-the-secret-1" not in str(refused.value)
    assert not is_all_zeros(target.backing_file(3), LUN_SIZES[3])

    wiped = wipe_lun(address, Chap(CHAP_USER, CHAP_PASSWORD))
    assert (wiped.portal, wiped.size_bytes) == (target.portal, LUN_SIZES[3])
    assert is_all_zeros(target.backing_file(3), LUN_SIZES[3])
    print(
        f"wiped 32 MiB in {wiped.seconds:.2f} s: {wiped.mib_per_second:.0f} MiB/s", file=sys.stderr
    )


def test_a_released_lun_is_zeroed_before_the_next_claim_gets_it(
    wiping_pool: Callable[[str], WipingPool],
) -> None:
    pool = wiping_pool(CHAP_PASSWORD)
    api, namespace, target, name = pool.api, pool.namespace, pool.target, pool.name
    api.apply(claim_manifest("first", namespace, name, size="10Mi"))
    first = bound_volume(api, namespace, "first")
    assert first["spec"]["iscsi"]["lun"] == 2
    lun_file = target.backing_file(2)
    fill_with_pattern(lun_file, LUN_SIZES[2])

    # The PV goes only once the LUN is zeroed: the LUN is never free with the data on it.
    volume = first["metadata"]["name"]
    api.delete(PERSISTENT_VOLUME_CLAIMS, "first", namespace)
    wait_for(partial(api.gone, PERSISTENT_VOLUMES, volume), timeout=60, what=f"{volume} deleted")
    assert is_all_zeros(lun_file, LUN_SIZES[2])
    [wiped] = [e for e in volume_events(api, volume) if e["reason"] == "LunWiped"]
    assert wiped["type"] == "Normal"
    assert f"LUN 2 of {IQN} zeroed through {target.portal}: 16Mi in" in wiped["message"]
    print(wiped["message"], file=sys.stderr)

    # The operator learns of the deletion from its own PV watch, a moment after the API says so.
    time.sleep(2)
    api.apply(claim_manifest("next", namespace, name, size="12Mi"))
    following = bound_volume(api, namespace, "next")
    assert following["spec"]["iscsi"]["lun"] == 2
    assert login_as_a_node_would(api, following) == LUN_SIZES[2]
    reclaim(api, namespace, name, "next")
    assert CHAP_PASSWORD not in pool.operator.log()


def test_a_wipe_the_target_refuses_keeps_the_volume_and_says_why(
    wiping_pool: Callable[[str], WipingPool],
) -> None:
    wrong = "not-the-secret-2"
    pool = wiping_pool(wrong)  # Available all the same: only a login checks a password
    api, namespace, target, name = pool.api, pool.namespace, pool.target, pool.name
    api.apply(claim_manifest("kept", namespace, name, size="10Mi"))
    volume = bound_volume(api, namespace, "kept")["metadata"]["name"]
    lun_file = target.backing_file(2)
    fill_with_pattern(lun_file, LUN_SIZES[2])
    api.delete(PERSISTENT_VOLUME_CLAIMS, "kept", namespace)

    failed = wait_for(
        lambda: [e for e in volume_events(api, volume) if e["reason"] == "WipeFailed"],
        timeout=60,
        what="a WipeFailed Event on the released volume",
    )
    message = failed[0]["message"]
    assert failed[0]["type"] == "Warning"
    assert "LUN 2 not zeroed, the volume stays until it is" in message, message
    assert f"{target.portal}: the target refused the login" in message, message
    remaining = api.get(PERSISTENT_VOLUMES, volume)
    assert remaining is not None and remaining["status"]["phase"] == "Released"
    assert not is_all_zeros(lun_file, LUN_SIZES[2])
    # Nothing else gets the LUN meanwhile.
    api.apply(claim_manifest("other", namespace, name, size="10Mi"))
    assert bound_volume(api, namespace, "other")["spec"]["iscsi"]["lun"] == 3

    # The right password in the Secret: the retry zeroes the LUN, and the volume goes.
    chap_secret_named(api, namespace, pool.secret, CHAP_USER, CHAP_PASSWORD)
    wait_for(partial(api.gone, PERSISTENT_VOLUMES, volume), timeout=120, what=f"{volume} deleted")
    assert is_all_zeros(lun_file, LUN_SIZES[2])
    texts = [e["message"] for e in volume_events(api, volume)]
    assert all(wrong not in text and CHAP_PASSWORD not in text for text in texts)
    log = pool.operator.log()
    assert wrong not in log and CHAP_PASSWORD not in log
    reclaim(api, namespace, name, "other")


def degraded(api: Api, backend: str) -> tuple[str, str]:
    condition = api.condition(backend, "Degraded") or {}
    return condition.get("status", ""), condition.get("reason", "")
