"""The test cluster, provider-neutral: a thin layer over `e2e/cluster.sh`.

    python -m stowage_e2e.cluster up|down|status|kubeconfig

The provider comes from STOWAGE_CLUSTER_PROVIDER (`local`, `kind`, `existing`); the
settings of the local cluster (node name, CIDRs, image names) are read from
`e2e/scripts/common.sh`, the one place that defines them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parents[1]
CLUSTER_SH = E2E_DIR / "cluster.sh"
COMMON_SH = E2E_DIR / "scripts" / "common.sh"

_SETTING_NAMES = (
    "STOWAGE_CACHE",
    "BIN_DIR",
    "KUBE_VERSION",
    "STATE_DIR",
    "CONTAINERD_SOCK",
    "NODE_NAME",
    "NODE_IP",
    "HOSTS_BRIDGE",
    "POD_BRIDGE",
    "HOSTS_CIDR",
    "CLUSTER_CIDR",
    "POD_CIDR",
    "SERVICE_CIDR",
    "SERVICE_IP",
    "SHARED_HOST_DIR",
    "BASE_IMAGE",
    "PAUSE_IMAGE",
    "OPERATOR_IMAGE",
    "HELPER_IMAGE",
    "TOOLS_IMAGE",
    "VM_NODE_NAMES",
    "VM_NODE_TAINT",
)


@dataclass(frozen=True)
class Settings:
    """The names and addresses of the local cluster, as common.sh sets them."""

    stowage_cache: Path
    bin_dir: Path
    kube_version: str
    state_dir: Path
    containerd_sock: Path
    node_name: str
    node_ip: str
    hosts_bridge: str
    pod_bridge: str
    hosts_cidr: str
    cluster_cidr: str
    pod_cidr: str
    service_cidr: str
    service_ip: str
    shared_host_dir: Path
    base_image: str
    pause_image: str
    operator_image: str
    helper_image: str
    tools_image: str
    vm_node_names: tuple[str, ...]
    vm_node_taint: str


@functools.cache
def settings() -> Settings:
    script = f'source "{COMMON_SH}"; ' + "; ".join(
        f'printf "%s\\n" "${name}"' for name in _SETTING_NAMES
    )
    output = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    values = dict(zip(_SETTING_NAMES, output, strict=True))
    return Settings(
        stowage_cache=Path(values["STOWAGE_CACHE"]),
        bin_dir=Path(values["BIN_DIR"]),
        kube_version=values["KUBE_VERSION"],
        state_dir=Path(values["STATE_DIR"]),
        containerd_sock=Path(values["CONTAINERD_SOCK"]),
        node_name=values["NODE_NAME"],
        node_ip=values["NODE_IP"],
        hosts_bridge=values["HOSTS_BRIDGE"],
        pod_bridge=values["POD_BRIDGE"],
        hosts_cidr=values["HOSTS_CIDR"],
        cluster_cidr=values["CLUSTER_CIDR"],
        pod_cidr=values["POD_CIDR"],
        service_cidr=values["SERVICE_CIDR"],
        service_ip=values["SERVICE_IP"],
        shared_host_dir=Path(values["SHARED_HOST_DIR"]),
        base_image=values["BASE_IMAGE"],
        pause_image=values["PAUSE_IMAGE"],
        operator_image=values["OPERATOR_IMAGE"],
        helper_image=values["HELPER_IMAGE"],
        tools_image=values["TOOLS_IMAGE"],
        vm_node_names=tuple(values["VM_NODE_NAMES"].split()),
        vm_node_taint=values["VM_NODE_TAINT"],
    )


def provider() -> str:
    """The provider `cluster.sh` will use (its default: kind with a Docker engine, else local)."""
    explicit = os.environ.get("STOWAGE_CLUSTER_PROVIDER")
    if explicit:
        return explicit
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    ):
        return "kind"
    return "local"


def _cluster_sh(command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs `cluster.sh COMMAND`; its log (stderr) goes straight to ours."""
    env = dict(os.environ, STOWAGE_CLUSTER_PROVIDER=provider())
    return subprocess.run(
        ["bash", str(CLUSTER_SH), command],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=check,
    )


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("cluster.sh printed no kubeconfig path")
    return lines[-1].strip()


def up() -> Path:
    """Brings the cluster up (a no-op when it is up) and returns its kubeconfig."""
    return Path(_last_line(_cluster_sh("up").stdout))


def down() -> None:
    """Removes the cluster and everything it left on this machine."""
    _cluster_sh("down")


def is_up() -> bool:
    return _cluster_sh("status", check=False).returncode == 0


def kubeconfig() -> Path | None:
    """The kubeconfig of a cluster that exists, else None."""
    result = _cluster_sh("kubeconfig", check=False)
    return Path(_last_line(result.stdout)) if result.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("up", "down", "status", "kubeconfig"):
        print("usage: python -m stowage_e2e.cluster up|down|status|kubeconfig", file=sys.stderr)
        return 2
    return _cluster_sh(args[0], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
