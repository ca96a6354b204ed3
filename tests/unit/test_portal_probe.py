"""The operator's TCP probe of iSCSI portals, against real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from stowage.api.backend import StorageBackend
from stowage.drivers.iscsi import portal_address
from stowage.reconcilers import driving
from stowage.reconcilers.backend_state import Facts, degraded_condition, ready_condition
from stowage.reconcilers.backends import tcp_probe, unreachable_servers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("portal", "address"),
    [
        ("10.0.0.5", ("10.0.0.5", 3260)),
        ("10.0.0.5:3261", ("10.0.0.5", 3261)),
        ("san.example.test", ("san.example.test", 3260)),
        ("[fd00::1]:3262", ("fd00::1", 3262)),
        ("[fd00::1]", ("fd00::1", 3260)),
    ],
)
def test_portal_addresses_default_to_port_3260(portal: str, address: tuple[str, int]) -> None:
    assert portal_address(portal) == address


def test_only_iscsi_backends_are_probed() -> None:
    iscsi = StorageBackend.model_validate(
        {
            "spec": {
                "iscsi": {
                    "portals": ["10.0.0.5", "10.0.0.6:3261"],
                    "iqn": "iqn.2024-01.test.example:a",
                    "luns": [{"lun": 1, "size": "1Gi"}],
                }
            }
        }
    )
    assert driving.probe_addresses(iscsi) == [
        ("10.0.0.5", "10.0.0.5", 3260),
        ("10.0.0.6:3261", "10.0.0.6", 3261),
    ]
    nfs = StorageBackend.model_validate({"spec": {"nfs": {"servers": ["a"], "path": "/x"}}})
    assert driving.probe_addresses(nfs) == []


def test_a_listening_portal_is_reachable_a_closed_one_is_refused() -> None:
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        open_port = listening.getsockname()[1]
        closed_port = closed.getsockname()[1]
        assert asyncio.run(tcp_probe("127.0.0.1", open_port)) is None
        assert asyncio.run(tcp_probe("127.0.0.1", closed_port)) == "connection refused"
        found = asyncio.run(
            unreachable_servers(
                [
                    (f"127.0.0.1:{open_port}", "127.0.0.1", open_port),
                    (f"127.0.0.1:{closed_port}", "127.0.0.1", closed_port),
                ]
            )
        )
    assert found == (f"127.0.0.1:{closed_port}: connection refused",)


def test_an_unreachable_portal_makes_the_backend_degraded_not_unready() -> None:
    facts = Facts(storage_class_name="san", unreachable_servers=("10.0.0.5: no answer within 2 s",))
    degraded = degraded_condition(facts)
    assert (degraded.status.value, degraded.reason) == ("True", "PortalUnreachable")
    assert "10.0.0.5: no answer within 2 s" in degraded.message
    assert ready_condition(facts, None).status.value == "True"
