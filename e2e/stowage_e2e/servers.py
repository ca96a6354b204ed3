"""Real storage servers on test hosts, started by the tests themselves.

    ganesha = NfsGanesha.start(host, exports={"/srv/nfs": "/export"})
    ganesha.list("/export")        # what a real NFSv4 client (libnfs) sees
    ganesha.stop()

Each server runs as a process inside its host's network namespace, bound to the host's address,
with its configuration, state and log under /var/lib/stowage-e2e/servers/<host>/<server>.
The Debian packages are installed on first use.
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


def apt_install(*packages: str) -> None:
    """Installs the Debian packages that are missing (the e2e scripts' apt_install)."""
    common = E2E_DIR / "scripts" / "common.sh"
    subprocess.run(
        ["bash", "-c", f'source "{common}" && apt_install "$@"', "apt_install", *packages],
        check=True,
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


@dataclass
class NfsGanesha:
    """An NFS-Ganesha server on one test host."""

    host: TestHost
    state_dir: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, host: TestHost, exports: Mapping[str, str]) -> NfsGanesha:
        """Serves each host directory (made if missing) under its NFSv4 pseudo path."""
        apt_install("nfs-ganesha", "nfs-ganesha-vfs", "libnfs-utils")
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
        result = subprocess.run(
            ["nfs-cat", self.url(pseudo_path)], capture_output=True, text=True, check=True
        )
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
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
