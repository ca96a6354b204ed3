"""A bounded TCP connect: whether a server's port answers, and how it does not."""

from __future__ import annotations

import socket


def probe(host: str, port: int, timeout: float) -> str:
    """ "ok", "refused", "timeout" or "unreachable", after at most `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "ok"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError:
        return "unreachable"
