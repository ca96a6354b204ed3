"""The network guard's chains, tried in a network namespace of their own: a new connection to
a documentation address is rejected at once, counted and its destination remembered, while
loopback and the cluster's networks pass; `off` leaves every other rule as it was.

The namespace has a route to everywhere through a veth pair whose both ends are inside it, so
even a packet the guard let through could go nowhere."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from stowage_e2e.cluster import settings
from stowage_e2e.guard import CHAIN, IPV4, Guard

pytestmark = pytest.mark.integration

CONNECT = """
import socket, sys
family, kind, host, port = sys.argv[1:]
sock = socket.socket(int(family), int(kind))
sock.settimeout(5)
try:
    sock.connect((host, int(port)))
    if int(kind) == socket.SOCK_DGRAM:  # a connected UDP socket is told of the ICMP answer
        sock.send(b"x")
        sock.recv(1)
    print("connected")
except (ConnectionRefusedError, PermissionError):  # UDP: the send itself is refused
    print("refused")
except TimeoutError:
    print("timeout")
except OSError:  # no neighbour answers on the veth: the host is unreachable
    print("unreachable")
"""


def run(namespace: str, *command: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *command], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"stowage-guardtest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run(name, "ip", "link", "set", "lo", "up")
        run(name, "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1")
        run(name, "ip", "addr", "add", "10.99.0.2/24", "dev", "out0")
        for link in ("out0", "out1"):
            run(name, "ip", "link", "set", link, "up")
        run(name, "ip", "route", "add", "default", "via", "10.99.0.1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def connect(namespace: str, host: str, port: int, *, udp: bool = False) -> str:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    return run(
        namespace, "python3", "-c", CONNECT, str(int(family)), str(int(kind)), host, str(port)
    ).strip()


def test_new_connections_outside_are_refused_counted_and_named(namespace: str) -> None:
    guard = Guard(("ip", "netns", "exec", namespace))
    run(namespace, "iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
    guard.on()
    try:
        assert connect(namespace, "192.0.2.1", 80) == "refused"
        assert connect(namespace, "203.0.113.80", 443) == "refused"
        assert connect(namespace, "198.51.100.7", 53, udp=True) == "refused"
        # Loopback passes the guard (nothing listens: the kernel itself refuses).
        assert connect(namespace, "127.0.0.1", 1) == "refused"
        assert guard.blocked() == 3
        assert sorted(guard.blocked_destinations(IPV4)) == [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.80",
        ]
        # The cluster's networks pass the guard: the packet is routed on (and goes nowhere).
        assert connect(namespace, settings().service_ip, 443) in ("timeout", "unreachable")
        assert guard.blocked() == 3
    finally:
        guard.off()
    rules = run(namespace, "iptables", "-S")
    assert CHAIN not in rules
    assert "-A OUTPUT -p tcp -m tcp --dport 9 -j ACCEPT" in rules


def test_a_second_on_starts_from_nothing(namespace: str) -> None:
    guard = Guard(("ip", "netns", "exec", namespace))
    guard.on()
    try:
        assert connect(namespace, "192.0.2.1", 80) == "refused"
        guard.on()  # as the next run does after an interrupted one
        assert guard.blocked() == 0
        assert guard.blocked_destinations(IPV4) == []
        assert run(namespace, "iptables", "-S", "OUTPUT").count(f"-j {CHAIN}") == 1
    finally:
        guard.off()
