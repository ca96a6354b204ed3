"""CIFS: the kernel's `mount -t cifs`, as the user of the backend's Secret.

The helper's copy of the Secret (keys `username`, `password`, optionally `domain`) becomes a
credentials file (0600) in the helper's private state directory, which the kernel mount gets
as `credentials=<file>` and smbclient, which checks the share first (stowage.agent.smb_check),
as its authentication file: both read `name=value` lines. The password is never on a command
line, in a log or in a message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from stowage.agent import smb_check
from stowage.agent.credentials import CredentialsError, private_directory, read_keys, write_private
from stowage.agent.mounting import MountClient, mount_command
from stowage.drivers.base import HostMount

USERNAME_KEY = "username"
PASSWORD_KEY = "password"
DOMAIN_KEY = "domain"
CREDENTIALS_FILE = "cifs-credentials"
# What mount.cifs's `mount error(N)` means when the share passed smbclient's check.
MOUNT_ERRORS = {
    19: "this node's kernel has no CIFS client (load the cifs module)",
    13: "the server refused the kernel's session or share access",
    95: "the server does not speak the protocol version of cifs.version",
    112: "the server went away",
    115: "the server did not answer the kernel in time",
}


@dataclass(frozen=True)
class SmbUser:
    username: str
    password: str
    domain: str = ""

    def __repr__(self) -> str:  # the password never lands in a log through a repr
        return f"SmbUser(username={self.username!r}, domain={self.domain!r}, password=<hidden>)"


def read_user(credentials: Path) -> SmbUser:
    """The SMB user from the files of the helper's Secret volume."""
    found = read_keys(credentials, (USERNAME_KEY, PASSWORD_KEY), (DOMAIN_KEY,), field="secretRef")
    user = SmbUser(found[USERNAME_KEY], found[PASSWORD_KEY], found.get(DOMAIN_KEY, ""))
    if not user.username:
        raise CredentialsError("the username of the backend's Secret is empty")
    for key, value in ((USERNAME_KEY, user.username), (PASSWORD_KEY, user.password)):
        if "\n" in value or "\0" in value:
            raise CredentialsError(f"the {key} of the backend's Secret spans several lines")
    if "\n" in user.domain or "\0" in user.domain:
        raise CredentialsError("the domain of the backend's Secret spans several lines")
    return user


def credentials_text(user: SmbUser) -> str:
    """The credentials file as mount.cifs(8) and smbclient's `-A` both read it."""
    lines = [f"username={user.username}", f"password={user.password}"]
    if user.domain:
        lines.append(f"domain={user.domain}")
    return "\n".join(lines) + "\n"


def write_credentials(user: SmbUser, state: Path) -> Path:
    path = private_directory(state) / CREDENTIALS_FILE
    write_private(path, credentials_text(user))
    return path


def command(mount: HostMount, source: str, credentials_file: Path) -> list[str]:
    """mount(8) with the backend's options and the credentials file's path (not its content)."""
    options = (*mount.options, f"credentials={credentials_file}")
    return mount_command(dataclasses.replace(mount, options=options), source)


def explain(output: str) -> str:
    """Why the kernel did not mount the share, with mount.cifs's own words on one line."""
    said = "; ".join(
        line.strip()
        for line in output.splitlines()
        if line.strip() and not line.startswith("Refer to the mount.cifs(8)")
    )
    for number, meaning in MOUNT_ERRORS.items():
        if f"mount error({number})" in said:
            return f"{meaning}: {said}"[-300:]
    return said[-300:] or "mount.cifs failed"


def client(mount: HostMount, credentials: Path, state: Path, mount_timeout: float) -> MountClient:
    """The CIFS way of mounting `mount`: its credentials file written to `state`, each source's
    share checked with smbclient before the kernel mounts it."""
    user = read_user(credentials)
    path = write_credentials(user, state)
    version = smb_check.version_of(mount.options)
    return MountClient(
        command=lambda mount, source: command(mount, source, path),
        explain=explain,
        check=lambda mount, source: smb_check.check(
            source, path, user.username, version, mount_timeout
        ),
    )
