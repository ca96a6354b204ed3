"""CephFS through ceph-fuse, the user-space client: no kernel module needed, and like Gluster's
client its process serves the mount for as long as it lives (so it can outlive the helper).

The Ceph user and key come from the helper's copy of the backend's Secret (CREDENTIALS_DIR,
keys `userID` and `userKey`). The key goes into a keyring file (0600) in the helper's private
state directory, beside a ceph.conf that names the monitors: never onto a command line (which
every user of the node can read in /proc), into a log or a message. ceph-fuse daemonizes into
`/`, so every path it is given is absolute, and Ceph takes the cluster name from the config
file's name, which must therefore be `ceph.conf`.

ceph-fuse's own messages are terse ("failed to fetch mon config", "(2) No such file or
directory"), and an unparsable key is echoed in them: `explain` turns them into the reason an
administrator can act on and drops anything that could hold the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stowage.agent.credentials import CredentialsError, private_directory, read_keys, write_private
from stowage.agent.mounting import MountClient
from stowage.drivers.base import HostMount

USER_KEY = "userID"
SECRET_KEY = "userKey"
# A Ceph user name as `ceph auth` accepts it after "client.".
USER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A cephx key: base64 of 28 bytes (AQ...==).
KEY_PATTERN = re.compile(r"[A-Za-z0-9+/]{38}==")


@dataclass(frozen=True)
class CephUser:
    name: str  # without "client."
    key: str

    def __repr__(self) -> str:  # the key never lands in a log through a repr
        return f"CephUser(name={self.name!r}, key=<hidden>)"


def read_user(credentials: Path) -> CephUser:
    """The Ceph user from the files of the helper's Secret volume."""
    found = read_keys(credentials, (USER_KEY, SECRET_KEY), field="userSecretRef")
    name, key = found[USER_KEY].removeprefix("client."), found[SECRET_KEY]
    if not USER_PATTERN.fullmatch(name):
        raise CredentialsError("userID is not a Ceph user name (e.g. `stowage`, no `client.`)")
    if not KEY_PATTERN.fullmatch(key):
        raise CredentialsError(
            "userKey is not a cephx key (as `ceph auth print-key client.<user>` prints it)"
        )
    return CephUser(name, key)


def split_source(source: str) -> tuple[str, str]:
    """`mon1:6789,mon2:/volumes` -> (`mon1:6789,mon2`, `/volumes`)."""
    monitors, _, path = source.partition(":/")
    return monitors, "/" + path


def client_config(monitors: str, state: Path, mount_timeout: float) -> str:
    """ceph.conf of the helper's client: the monitors, the keyring beside it, and its log and
    admin socket kept in the state directory. The client gives up before the helper's own
    timeout, so that it reports why rather than being killed."""
    return f"""[global]
mon host = {monitors}
keyring = {state}/keyring
log file = {state}/$cluster-$name.log
admin socket = {state}/$cluster-$name.$pid.asok
client mount timeout = {max(5, int(mount_timeout * 2 / 3))}
"""


def write_client_files(monitors: str, user: CephUser, state: Path, timeout: float) -> Path:
    """A Ceph client's ceph.conf and keyring in `state` (0700); the config's path (shared by
    ceph-fuse, rbd and rbd-fuse)."""
    private_directory(state)
    write_private(state / "ceph.conf", client_config(monitors, state, timeout))
    write_private(state / "keyring", f"[client.{user.name}]\n\tkey = {user.key}\n")
    return state / "ceph.conf"


def prepare(mount: HostMount, user: CephUser, state: Path, mount_timeout: float) -> None:
    """The client's config and keyring in `state` (0700), ready for `command`."""
    monitors, _ = split_source(mount.sources[0])
    write_client_files(monitors, user, state, mount_timeout)


def command(mount: HostMount, source: str, user: CephUser, state: Path) -> list[str]:
    """The ceph-fuse command line: no secret in it, only the path of the keyring's config."""
    _, path = split_source(source)
    settings = [f"--{name}={value}" for name, value in mount.client_settings]
    fuse_options = ["-o", ",".join(mount.options)] if mount.options else []
    return [
        "ceph-fuse",
        "-c",
        str(state / "ceph.conf"),
        "--id",
        user.name,
        *settings,
        "-r",
        path,
        *fuse_options,
        mount.mount_point,
    ]


def explain(output: str, mount: HostMount, source: str, user: CephUser) -> str:
    """Why ceph-fuse did not mount, in the words an administrator acts on."""
    monitors, path = split_source(source)
    fs_name = dict(mount.client_settings).get("client_fs", "")
    if "handle_auth_bad_method" in output or "(1) Operation not permitted" in output:
        return (
            f"the Ceph monitors refused client.{user.name}: wrong userKey or userID, "
            "or the user lacks caps on the file system"
        )
    if "(13) Permission denied" in output:
        return f"client.{user.name} may not mount {path} of CephFS {fs_name} (its mds caps)"
    if "mdsmap subscription failed" in output:
        return f"the Ceph cluster has no CephFS named {fs_name!r}"
    if "ceph mount failed with (2) No such file or directory" in output:
        return f"{path} does not exist in CephFS {fs_name}"
    if "failed to fetch mon config" in output or "(110) Connection timed out" in output:
        return f"no Ceph monitor answered ({monitors})"
    return f"ceph-fuse: {last_safe_line(output, user)}"


def last_safe_line(output: str, user: CephUser) -> str:
    """The last line of a Ceph client's output that cannot hold the key."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    safe = [line for line in lines if user.key not in line and "key" not in line.lower()]
    return safe[-1][-300:] if safe else "failed"


def client(mount: HostMount, credentials: Path, state: Path, mount_timeout: float) -> MountClient:
    """The ceph-fuse way of mounting `mount`, its config and keyring written to `state`."""
    user = read_user(credentials)
    prepare(mount, user, state, mount_timeout)
    return MountClient(
        command=lambda mount, source: command(mount, source, user, state),
        explain=lambda output: explain(output, mount, mount.sources[0], user),
    )
