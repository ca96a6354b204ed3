"""iscsi through the kubelet: a pod's claim is a LUN of a real tgt target on a test host, logged
in to by the node's kernel initiator with the backend's CHAP Secret and formatted by the kubelet.

The pod runs on the VM node (Debian's kernel with iscsi_tcp; open-iscsi's iscsid in the VM);
this machine's kernel has no initiator. On kind the node gets open-iscsi (e2e/cluster/kind.sh).
The LUN pool, CHAP and Delete are also verified in tests/integration/test_iscsi_target.py with
libiscsi's userspace initiator.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator

import pytest

from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.fixtures import TestHostFactory
from stowage_e2e.helpers import finished_log, release_claim
from stowage_e2e.iscsi_target import MIB, TgtTarget
from stowage_e2e.kube import Kube
from stowage_e2e.vm_nodes import AnyNode, VmNode

pytestmark = pytest.mark.e2e

IQN = "iqn.2026-11.io.stowage.e2e:pods"
CHAP_USER = "stowage-pods"
CHAP_PASSWORD = "chap-" + uuid.uuid4().hex[:12]


@pytest.fixture
def target(test_hosts: TestHostFactory) -> Iterator[TgtTarget]:
    tgt = TgtTarget.start(
        test_hosts.one(), IQN, {1: 64 * MIB}, user=CHAP_USER, password=CHAP_PASSWORD
    )
    yield tgt
    tgt.stop()


def chap_secret(kube: Kube, namespace: str) -> str:
    keys = {"node.session.auth.username": CHAP_USER, "node.session.auth.password": CHAP_PASSWORD}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "chap"},
        "type": "kubernetes.io/iscsi-chap",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in keys.items()},
    }
    kube.apply(secret, namespace)
    return "chap"


def test_a_pod_writes_to_its_lun_and_the_next_claim_gets_the_lun_back(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    target: TgtTarget,
    kernel_node: VmNode | AnyNode,
) -> None:
    secret = chap_secret(kube, namespace)
    spec = {
        "iscsi": {
            "portals": [target.portal],
            "iqn": IQN,
            "luns": [{"lun": 1, "size": "64Mi"}],
            "chapSecretRef": {"name": secret, "namespace": namespace},
        },
        "storageClass": {"volumeBindingMode": "Immediate"},
    }
    name = backend_factory("iscsi-pods", spec)
    scenario.wait_ready(kube, name)

    for round_ in ("first", "second"):
        kube.apply(scenario.claim("data", name, "32Mi"), namespace)
        volume = scenario.bound_volume(kube, "data", namespace)
        assert volume["spec"]["iscsi"]["lun"] == 1  # the pool's one LUN, back after Delete
        text = f"{round_} writer {uuid.uuid4()}"
        writer = scenario.writer_pod("writer", "data", settings().base_image, text)
        kube.apply(kernel_node.place(writer), namespace)
        assert finished_log(kube, namespace, "writer", timeout=300).strip() == text
        release_claim(kube, namespace)
