"""Real storage servers on test hosts, started by the tests themselves.

    ganesha = NfsGanesha.start(host, exports={"/srv/nfs": "/export"})
    ganesha.list("/export")        # what a real NFSv4 client (libnfs) sees
    ganesha.stop()

Each server runs as a process inside its host's network namespace, bound to the host's address,
with its configuration, state and log under /var/lib/stowage-e2e/servers/<host>/<server>.
The Debian packages come from e2e/packages.txt, installed by scripts/install.sh.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stowage_e2e.cluster import E2E_DIR
from stowage_e2e.hosts import TestHost

SERVERS_DIR = Path(os.environ.get("STOWAGE_STATE_DIR", "/var/lib/stowage-e2e")) / "servers"
NFS_PORT = 2049


PACKAGES_FILE = E2E_DIR / "packages.txt"


def listed_packages() -> frozenset[str]:
    """The Debian packages of e2e/packages.txt, which scripts/install.sh installs up front."""
    lines = (line.split("#", 1)[0].strip() for line in PACKAGES_FILE.read_text().splitlines())
    return frozenset(line for line in lines if line)


def require_packages(*packages: str) -> None:
    """Fails, naming them, when the Debian packages a server needs are not installed.

    Nothing is installed here: the suite installs everything before its network guard goes on.
    """
    unlisted = sorted(set(packages) - listed_packages())
    if unlisted:
        raise RuntimeError(f"{', '.join(unlisted)}: not in {PACKAGES_FILE}; add them there")
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    installed = {line.split()[0] for line in status.splitlines() if line.split()[1:] == ["ii"]}
    missing = sorted(set(packages) - installed)
    if missing:
        raise RuntimeError(
            f"Debian packages not installed: {', '.join(missing)} (run: bash scripts/install.sh)"
        )


def wait_for_port(host: TestHost, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["bash", "-c", f"exec 3<>/dev/tcp/{host.ip}/{port}"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {host.ip}:{port} after {timeout} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminates a server this suite started, killing it if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ganesha_config(host: TestHost, exports: Mapping[str, str], state_dir: Path) -> str:
    """NFSv4 only, FSAL VFS, no grace period (a test server starts with no clients).

    Minor version 0 stays on: libnfs, the userspace client the tests read with, speaks only 4.0.
    """
    blocks = [
        f"""NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {NFS_PORT};
    Bind_Addr = {host.ip};
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSv4 {{
    Graceless = true;
    Minor_Versions = 0, 1, 2;
    RecoveryBackend = fs;
    RecoveryRoot = "{state_dir / "recovery"}";
}}
NFS_KRB5 {{ Active_krb5 = false; }}
"""
    ]
    for export_id, (path, pseudo) in enumerate(sorted(exports.items()), start=1):
        blocks.append(
            f"""EXPORT {{
    Export_Id = {export_id};
    Path = "{path}";
    Pseudo = "{pseudo}";
    Protocols = 4;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
"""
        )
    return "\n".join(blocks)


def export_on_disk(host_name: str) -> Path:
    """Where the `ganesha` fixture's server keeps its export `/export`."""
    return SERVERS_DIR / host_name / "export"


@dataclass
class NfsGanesha:
    """An NFS-Ganesha server on one test host."""

    host: TestHost
    state_dir: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, host: TestHost, exports: Mapping[str, str]) -> NfsGanesha:
        """Serves each host directory (made if missing) under its NFSv4 pseudo path."""
        require_packages("nfs-ganesha", "nfs-ganesha-vfs", "libnfs-utils")
        state_dir = SERVERS_DIR / host.name / "ganesha"
        (state_dir / "recovery").mkdir(parents=True, exist_ok=True)
        for path in exports:
            Path(path).mkdir(parents=True, exist_ok=True)
        config = state_dir / "ganesha.conf"
        config.write_text(ganesha_config(host, exports, state_dir))
        process = host.popen(
            [
                "ganesha.nfsd",
                "-F",
                "-f",
                str(config),
                "-L",
                str(state_dir / "ganesha.log"),
                "-p",
                str(state_dir / "ganesha.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make demo`, which leaves the server running
        )
        server = cls(host, state_dir, process)
        try:
            wait_for_port(host, NFS_PORT)
        except TimeoutError:
            server.stop()
            raise RuntimeError(f"ganesha did not start:\n{server.log()[-3000:]}") from None
        return server

    def url(self, pseudo_path: str) -> str:
        return f"nfs://{self.host.ip}{pseudo_path}?version=4"

    def list(self, pseudo_path: str) -> list[str]:
        """Names in a directory of the export, as a real NFSv4 client reads them."""
        result = subprocess.run(
            ["nfs-ls", self.url(pseudo_path)], capture_output=True, text=True, check=True
        )
        return [line.split()[-1] for line in result.stdout.splitlines() if line.strip()]

    def read(self, pseudo_path: str) -> str:
        return self.read_bytes(pseudo_path).decode()

    def read_bytes(self, pseudo_path: str) -> bytes:
        """A file of the export, as a real NFSv4 client (libnfs) reads it."""
        result = subprocess.run(["nfs-cat", self.url(pseudo_path)], capture_output=True, check=True)
        return result.stdout

    def write(self, pseudo_path: str, text: str) -> None:
        """Writes a file of the export, as a real NFSv4 client does."""
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as local:
            local.write(text)
            local.flush()
            subprocess.run(
                ["nfs-cp", local.name, self.url(pseudo_path)], capture_output=True, check=True
            )

    def log(self) -> str:
        path = self.state_dir / "ganesha.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)


SMB_PORT = 445


def samba_config(host: TestHost, shares: Mapping[str, str], state_dir: Path) -> str:
    """A standalone server on the host's address (SMB 2 and 3, port 445, no NetBIOS), its users
    in a passdb of its own, every share read-write to its users as root on the disk."""
    blocks = [
        f"""[global]
    server role = standalone server
    workgroup = STOWAGE
    netbios name = {host.name.upper().replace("-", "")}
    interfaces = {host.ip}
    bind interfaces only = yes
    smb ports = {SMB_PORT}
    disable netbios = yes
    server min protocol = SMB2_02
    map to guest = never
    passdb backend = tdbsam:{state_dir}/private/passdb.tdb
    private dir = {state_dir}/private
    lock directory = {state_dir}/lock
    state directory = {state_dir}/state
    cache directory = {state_dir}/cache
    pid directory = {state_dir}/run
    ncalrpc dir = {state_dir}/ncalrpc
    log file = {state_dir}/log.smbd
    log level = 1
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    usershare path =
"""
    ]
    for name, path in sorted(shares.items()):
        blocks.append(
            f"""[{name}]
    path = {path}
    read only = no
    force user = root
"""
        )
    return "\n".join(blocks)


@dataclass
class Samba:
    """A Samba server (smbd) on one test host; its users are Unix accounts of this machine
    (Samba needs one per user), removed by `stop`."""

    host: TestHost
    state_dir: Path
    process: subprocess.Popen[bytes]
    users: tuple[str, ...]

    @classmethod
    def start(cls, host: TestHost, shares: Mapping[str, str], users: Mapping[str, str]) -> Samba:
        """Serves each host directory (made if missing) as the share of its name, to `users`
        (name -> password)."""
        require_packages("samba", "smbclient")
        state_dir = SERVERS_DIR / host.name / "samba"
        for directory in ("private", "lock", "state", "cache", "run", "ncalrpc"):
            (state_dir / directory).mkdir(parents=True, exist_ok=True)
        for path in shares.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        config = state_dir / "smb.conf"
        config.write_text(samba_config(host, shares, state_dir))
        server = cls(host, state_dir, _start_smbd(host, config), tuple(users))
        try:
            for name, password in users.items():
                server.add_user(name, password)
            wait_for_port(host, SMB_PORT)
        except (TimeoutError, subprocess.CalledProcessError):
            server.stop()
            raise RuntimeError(f"smbd did not start:\n{server.log()[-3000:]}") from None
        return server

    @property
    def config(self) -> Path:
        return self.state_dir / "smb.conf"

    def add_user(self, name: str, password: str) -> None:
        """A Unix account without login or home, and its Samba password (on stdin)."""
        if subprocess.run(["id", name], capture_output=True, check=False).returncode != 0:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
            )
        subprocess.run(
            ["smbpasswd", "-c", str(self.config), "-s", "-a", name],
            input=f"{password}\n{password}\n",
            capture_output=True,
            text=True,
            check=True,
        )

    def source(self, share: str) -> str:
        return f"//{self.host.ip}/{share}"

    def smbclient(
        self, share: str, user: str, password: str, command: str
    ) -> subprocess.CompletedProcess[str]:
        """smbclient, a real SMB client, runs `command` on the share as `user` (the password
        in an authentication file, as the helper gives it)."""
        authentication = self.state_dir / f"auth-{user}"
        authentication.touch(mode=0o600)
        authentication.write_text(f"username={user}\npassword={password}\n")
        return subprocess.run(
            [
                "smbclient",
                self.source(share),
                "--configfile=/dev/null",
                f"--authentication-file={authentication}",
                "--max-protocol=SMB3",
                f"--command={command}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def list(self, share: str, user: str, password: str, directory: str = "") -> list[str]:
        """Names in a directory of the share, as smbclient lists them."""
        result = self.smbclient(share, user, password, f'ls "{directory}/*"')
        if result.returncode != 0:
            raise RuntimeError(f"smbclient ls {directory}: {result.stdout}{result.stderr}")
        names = []
        for line in result.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and line.startswith("  ") and fields[0] not in (".", ".."):
                names.append(fields[0])
        return names

    def read(self, share: str, user: str, password: str, path: str) -> str:
        """A file of the share, fetched by smbclient."""
        local = self.state_dir / "fetched"
        local.unlink(missing_ok=True)
        result = self.smbclient(share, user, password, f'get "{path}" "{local}"')
        if result.returncode != 0:
            raise RuntimeError(f"smbclient get {path}: {result.stdout}{result.stderr}")
        return local.read_text()

    def log(self) -> str:
        path = self.state_dir / "log.smbd"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        for user in self.users:
            subprocess.run(["userdel", user], capture_output=True, check=False)


def _start_smbd(host: TestHost, config: Path) -> subprocess.Popen[bytes]:
    return host.popen(
        ["smbd", "--foreground", "--no-process-group", f"--configfile={config}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
