"""`stowage nas-server nfs|smb`: the NFS (NFS-Ganesha) or SMB (Samba) server of one NASShare.

NFS: the export rules are reloaded in place (SIGHUP: Ganesha updates its exports, so clients
that stay allowed keep their state and newly allowed ones get in).

With a Lease named, the server starts only once its pod is the share's active server pod
(`stowage.nas.election`), and stops when it no longer is.

SMB: the users are the keys of the user's Secret, mounted as files (user name: password). They
are made Unix users of the container and Samba users (passwords on smbpasswd's stdin, never on a
command line or in a log); a change of the Secret updates them, a change of smb.conf is reloaded
(SIGHUP). smb.conf itself names no password.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stowage.nas.election import ActiveLease, active_turn
from stowage.nas.proxy import served_config
from stowage.nas.supervise import supervise

logger = logging.getLogger(__name__)

# A new share is writable by every client user the rules let write (root is squashed by
# default); the NFSv4 recovery state is the server's alone.
EXPORTED_MODE = 0o777
RECOVERY_MODE = 0o700


@dataclass(frozen=True)
class ShareDirectories:
    exported: Path
    recovery: Path

    def make(self) -> None:
        """Made once, by whichever server of the pod comes first."""
        for directory, mode in ((self.exported, EXPORTED_MODE), (self.recovery, RECOVERY_MODE)):
            try:
                directory.mkdir(parents=True)
            except FileExistsError:
                continue
            directory.chmod(mode)  # not narrowed by the umask


def reload(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGHUP)


# What Ganesha reads: the operator's configuration as this pod fills it in (stowage.nas.proxy).
SERVED_CONFIG = Path("/tmp/ganesha.conf")


def run_nfs(
    config: Path, directories: ShareDirectories, lease: ActiveLease | None, data_mount: str
) -> int:
    def write_served() -> None:
        SERVED_CONFIG.write_text(served_config(config.read_text(), data_mount))

    def on_change(server: subprocess.Popen[bytes]) -> None:
        write_served()
        reload(server)

    with active_turn(lease) as lost:
        directories.make()
        write_served()
        command = ["ganesha.nfsd", "-F", "-L", "/dev/stderr", "-p", "/tmp/ganesha.pid", "-f"]
        return supervise([*command, str(SERVED_CONFIG)], [config], on_change, lost=lost)


# Samba's state and run directories (a container starts without what systemd would make).
SAMBA_DIRECTORIES = ("/run/samba", "/var/lib/samba/private", "/var/cache/samba", "/var/log/samba")


def run_smb(
    config: Path, users: Path, directories: ShareDirectories, lease: ActiveLease | None
) -> int:
    for directory in SAMBA_DIRECTORIES:
        Path(directory).mkdir(parents=True, exist_ok=True)
    sync_smb_users(users)

    def on_change(server: subprocess.Popen[bytes]) -> None:
        sync_smb_users(users)
        reload(server)

    with active_turn(lease) as lost:
        directories.make()
        command = [
            "smbd",
            "--foreground",
            "--no-process-group",
            "--debug-stdout",
            "-s",
            str(config),
        ]
        return supervise(command, [config, users], on_change, lost=lost)


def smb_users(users: Path) -> dict[str, str]:
    """User name to password, from the mounted Secret (its keys are files; `..data` and the
    like are the kubelet's)."""
    return {
        path.name: path.read_text().rstrip("\n")
        for path in sorted(users.iterdir())
        if path.is_file() and not path.name.startswith(".")
    }


def sync_smb_users(users: Path) -> None:
    wanted = smb_users(users)
    known = set(_samba_users())
    for name, password in wanted.items():
        if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
            subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
            )
        subprocess.run(
            ["smbpasswd", "-s", "-a", name],
            input=f"{password}\n{password}\n".encode(),
            capture_output=True,
            check=True,
        )
    for name in known - wanted.keys():
        subprocess.run(["smbpasswd", "-x", name], capture_output=True, check=True)
    logger.info("SMB users: %s", ", ".join(sorted(wanted)) or "none")


def _samba_users() -> list[str]:
    listing = subprocess.run(["pdbedit", "-L"], capture_output=True, text=True, check=False)
    return [line.split(":", 1)[0] for line in listing.stdout.splitlines() if ":" in line]
