"""Checking an SMB share with the user-space client before the kernel mounts it.

The kernel's `mount -t cifs` says little when it fails ("mount error(13): Permission denied"
for a wrong password and for a share the user may not use alike; the details only in the
kernel log). `smbclient` speaks the same protocol with the same credentials file and says
what the server answered (NT_STATUS_...): `explain` turns that into the reason an
administrator acts on. The credentials go to smbclient as an authentication file (`-A`),
never on its command line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# What smbclient negotiates for each `cifs.version` (the kernel's `vers=`): that dialect only.
PROTOCOLS = {"1.0": "NT1", "2.0": "SMB2_02", "2.1": "SMB2_10", "3.0": "SMB3_00"}
PROTOCOLS |= {"3.0.2": "SMB3_02", "3.02": "SMB3_02", "3.1.1": "SMB3_11", "3.11": "SMB3_11"}
DEFAULT_PROTOCOL = "SMB3"
# Server answers that mean it cannot be reached or talked to at all.
UNREACHABLE = (
    "NT_STATUS_CONNECTION_REFUSED",
    "NT_STATUS_IO_TIMEOUT",
    "NT_STATUS_HOST_UNREACHABLE",
    "NT_STATUS_NETWORK_UNREACHABLE",
    "NT_STATUS_CONNECTION_RESET",
    "NT_STATUS_CONNECTION_DISCONNECTED",
    "NT_STATUS_NOT_FOUND",
)
ACCOUNT_PROBLEMS = (
    "NT_STATUS_ACCOUNT_DISABLED",
    "NT_STATUS_ACCOUNT_LOCKED_OUT",
    "NT_STATUS_ACCOUNT_EXPIRED",
    "NT_STATUS_PASSWORD_EXPIRED",
    "NT_STATUS_PASSWORD_MUST_CHANGE",
    "NT_STATUS_ACCOUNT_RESTRICTION",
    "NT_STATUS_INVALID_LOGON_HOURS",
    "NT_STATUS_INVALID_WORKSTATION",
)


def split_source(source: str) -> tuple[str, str]:
    """`//server/share` -> (server, share)."""
    server, _, share = source.removeprefix("//").partition("/")
    return server, share


def protocol(version: str | None) -> str:
    """The smbclient protocol name of a kernel `vers=` value."""
    return PROTOCOLS.get(version or "", DEFAULT_PROTOCOL)


def version_of(options: tuple[str, ...]) -> str | None:
    """The `vers=` of a cifs mount's options."""
    for option in options:
        name, _, value = option.partition("=")
        if name == "vers":
            return value
    return None


def check_command(
    source: str, authentication: Path, version: str | None, timeout: float
) -> list[str]:
    """smbclient connecting to the share as the file's user and listing its top directory,
    with the dialect the kernel will use and no smb.conf of its own."""
    dialect = protocol(version)
    return [
        "smbclient",
        source,
        "--configfile=/dev/null",
        f"--authentication-file={authentication}",
        f"--option=client min protocol={dialect}",
        f"--max-protocol={dialect}",
        f"--timeout={max(1, int(timeout))}",
        "--command=ls",
    ]


def status_code(output: str) -> str | None:
    """The first NT_STATUS_... word of smbclient's output."""
    for word in output.replace("(", " ").replace(")", " ").replace(":", " ").split():
        if word.startswith("NT_STATUS_") and word != "NT_STATUS_OK":
            return word
    return None


def explain(output: str, source: str, username: str, version: str | None) -> str:
    """Why smbclient could not use the share, in the words an administrator acts on."""
    server, share = split_source(source)
    code = status_code(output)
    if code == "NT_STATUS_LOGON_FAILURE":
        return (
            f"{server} refused the logon of user {username!r}: wrong username or password "
            f"in the backend's Secret ({code})"
        )
    if code == "NT_STATUS_BAD_NETWORK_NAME":
        return f"{server} has no share named {share!r} ({code})"
    if code == "NT_STATUS_ACCESS_DENIED":
        return f"user {username!r} may not use share {share!r} on {server} ({code})"
    if code in ACCOUNT_PROBLEMS:
        return f"{server} refused the account {username!r} ({code})"
    if code in UNREACHABLE or code == "NT_STATUS_UNSUCCESSFUL":
        return f"the SMB server {server} cannot be reached ({code})"
    if code in ("NT_STATUS_NOT_SUPPORTED", "NT_STATUS_INVALID_NETWORK_RESPONSE"):
        return f"{server} does not speak SMB {version or '3'} ({code})"
    if code is not None:
        return f"{server} answered {code}"
    return f"smbclient: {last_line(output)}"


def last_line(output: str) -> str:
    """The last line of smbclient's output (which never holds the password: it reads it from
    the authentication file and does not echo it)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "failed"


def check(
    source: str, authentication: Path, username: str, version: str | None, timeout: float
) -> str | None:
    """None when the user can list the share; else why not."""
    command = check_command(source, authentication, version, timeout)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        server, _ = split_source(source)
        return f"the SMB server {server} did not answer smbclient within {timeout:.0f} s"
    except FileNotFoundError:
        return "smbclient is not installed in the helper image"
    if result.returncode == 0:
        return None
    return explain(result.stdout + result.stderr, source, username, version)
