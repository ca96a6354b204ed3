"""The network guard allows exactly the networks the cluster is configured with: one source
(e2e/scripts/common.sh) for both, and no other network."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from stowage_e2e.cluster import E2E_DIR, settings
from stowage_e2e.guard import allowed_networks, is_allowed

pytestmark = pytest.mark.unit

LOCAL_CLUSTER_SCRIPTS = sorted((E2E_DIR / "cluster" / "local").glob("*.sh"))
# qemu's own user network (slirp), inside a standalone VM's qemu process: never a network here.
QEMU_USER_NETWORK = ipaddress.ip_network("10.0.2.0/24")


def covered(cidr: str) -> bool:
    network = ipaddress.ip_network(cidr)
    return any(
        network.version == allowed.version and network.subnet_of(allowed)
        for allowed in allowed_networks()
    )


def test_every_network_of_the_local_cluster_is_allowed() -> None:
    s = settings()
    for cidr in (s.hosts_cidr, s.cluster_cidr, s.pod_cidr, s.service_cidr):
        assert covered(cidr), cidr
    for address in (s.node_ip, s.service_ip):
        assert is_allowed(address), address
    assert ipaddress.ip_network(s.pod_cidr).subnet_of(ipaddress.ip_network(s.cluster_cidr))


def test_the_kind_cluster_uses_the_same_networks() -> None:
    config = yaml.safe_load((E2E_DIR / "kind" / "config.yaml").read_text())
    assert config["networking"]["podSubnet"] == settings().cluster_cidr
    assert config["networking"]["serviceSubnet"] == settings().service_cidr


def test_nothing_else_is_allowed() -> None:
    s = settings()
    expected = {"127.0.0.0/8", "::1/128", s.hosts_cidr, s.cluster_cidr, s.service_cidr}
    assert {str(network) for network in allowed_networks()} == expected


@pytest.mark.parametrize(
    "address", ["192.0.2.1", "198.51.100.10", "203.0.113.80", "10.255.255.53", "fd00::2", "8.8.8.8"]
)
def test_outside_addresses_are_not_allowed(address: str) -> None:
    assert not is_allowed(address)


@pytest.mark.parametrize("script", LOCAL_CLUSTER_SCRIPTS, ids=lambda path: path.name)
def test_the_local_cluster_scripts_take_their_networks_from_common_sh(script: Path) -> None:
    literal = re.compile(r"\b(?:10|172|192\.168)\.\d+\.\d+\.\d+\b")
    found = literal.findall(script.read_text())
    assert [a for a in found if ipaddress.ip_address(a) not in QEMU_USER_NETWORK] == []


def test_the_cluster_dns_forwards_nothing() -> None:
    local = (E2E_DIR / "cluster" / "local" / "local.sh").read_text()
    corefile = local[local.index("write_corefile()") : local.index("dns_service()")]
    assert "kubernetes cluster.local" in corefile
    assert not re.search(r"^\s*(forward|proxy)\b", corefile, re.M)
