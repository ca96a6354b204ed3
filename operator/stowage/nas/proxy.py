"""A data claim that is itself an NFS export, served again by Ganesha's FSAL PROXY_V4.

Ganesha's FSAL VFS ignores NFS mounts (it would export nothing: clients are told the share does
not exist), and the file handles of a kernel NFS mount would differ from node to node anyway.
The proxy talks to the claim's NFS server itself, so the handles it gives clients are that
server's own, the same whichever server pod serves them: a client keeps its files open across
a takeover. Only the server pod knows where its data claim is (the PV's server and directory),
so the operator's configuration names them by these placeholders and the pod fills them in
from its own mount table before Ganesha reads it.
"""

from __future__ import annotations

import socket

from stowage.agent.mounting import mount_source
from stowage.objects.nas import DATA_SERVER, DATA_SERVER_PATH


class DataNotOnNfsError(Exception):
    """The configuration proxies the data claim, but it is not an NFS mount here."""


def is_proxied(config: str) -> bool:
    return DATA_SERVER in config


def fill_in(config: str, source: str) -> str:
    """`config` with the server (as the IPv4 address PROXY_V4 needs) and the directory of the
    data claim's NFS mount source `host:/path`."""
    host, separator, path = source.rpartition(":")
    if not separator or not host or not path.startswith("/"):
        raise DataNotOnNfsError(f"the data claim's mount source {source!r} is not host:/path")
    address = socket.gethostbyname(host.strip("[]"))
    return config.replace(DATA_SERVER_PATH, path.rstrip("/") or "/").replace(DATA_SERVER, address)


def served_config(config: str, data_mount: str) -> str:
    """What Ganesha is given: the operator's configuration, filled in where it proxies."""
    if not is_proxied(config):
        return config
    source = mount_source(data_mount)
    if source is None:
        raise DataNotOnNfsError(f"nothing is mounted at {data_mount}")
    return fill_in(config, source)
