"""The `stowage` command: `run` the operator, print the `crds`, run the mount-helper `agent`,
run a NASShare's NFS server (`nas-server`), serve the CSI driver (`csi`).

Each subcommand is one `add_*` function registering its parser and the function that runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stowage import __version__
from stowage.settings import Settings, add_arguments

Command = Callable[[argparse.Namespace, argparse.ArgumentParser], int]

DESCRIPTION = "stowage: every kind of storage for a Kubernetes cluster, from one place."
RUN_EPILOG = """\
endpoints:
  http://ADDR:HEALTH_PORT/healthz   liveness (kopf's probe)
  http://ADDR:METRICS_PORT/metrics  Prometheus metrics
  http://ADDR:METRICS_PORT/readyz   readiness: 200 once the operator has started

Every option can also be given as an environment variable STOWAGE_<OPTION>
(e.g. STOWAGE_LOG_FORMAT=json); a command-line flag wins over the environment.
"""


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        settings = Settings.resolve(args, os.environ)
    except ValueError as error:
        parser.error(str(error))
    from stowage.reconcilers.operator import run_operator  # kopf loads only for `run`

    return run_operator(settings)


def crds_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from stowage.api.crds import all_crds, render_yaml

    sys.stdout.write(render_yaml(all_crds()))
    return 0


def configure_logging(parser: argparse.ArgumentParser) -> None:
    """Logging of the programs the operator starts: INFO, in the format of STOWAGE_LOG_FORMAT."""
    from stowage import logging as stowage_logging
    from stowage.settings import LogFormat, LogLevel

    try:
        log_format = LogFormat(os.environ.get("STOWAGE_LOG_FORMAT", LogFormat.TEXT.value))
    except ValueError as error:
        parser.error(f"STOWAGE_LOG_FORMAT: {error}")
    stowage_logging.configure(log_format, LogLevel.INFO)


def agent_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from stowage.agent.runner import Agent, AgentSettings
    from stowage.kube import Connection, Kube

    node = args.node or os.environ.get("NODE_NAME", "")
    if not node:
        parser.error("--node (or NODE_NAME) is required")
    configure_logging(parser)
    settings = AgentSettings(
        backend=args.backend,
        node=node,
        namespace=os.environ.get("POD_NAMESPACE", ""),
        interval=args.interval,
    )
    kube = Kube(Connection.load(args.kubeconfig, pool_size=2), timeout=30)
    return Agent(kube, settings).run()


def nas_server_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from stowage.kube import Connection, Kube
    from stowage.nas.election import ActiveLease, LeaseName
    from stowage.nas.server import ShareDirectories, run_nfs, run_smb

    if args.protocol == "smb" and args.users is None:
        parser.error("--users is required for smb")
    lease = None
    if args.lease:
        pod, namespace = os.environ.get("POD_NAME", ""), os.environ.get("POD_NAMESPACE", "")
        if not pod or not namespace:
            parser.error("--lease needs POD_NAME and POD_NAMESPACE")
        kube = Kube(Connection.load(args.kubeconfig, pool_size=1), timeout=5)
        lease = ActiveLease(kube, LeaseName(namespace, args.lease, identity=pod))
    configure_logging(parser)
    directories = ShareDirectories(exported=args.exported, recovery=args.recovery)
    if args.protocol == "nfs":
        return run_nfs(args.config, directories, lease, args.data)
    return run_smb(args.config, args.users, directories, lease)


def csi_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from stowage.csi.plugin import PluginSettings, run_until_signalled
    from stowage.kube import Connection, Kube

    node = None if args.node is None else (args.node or os.environ.get("NODE_NAME", ""))
    if not args.controller and args.node is None:
        parser.error("serve --controller, --node NAME, or both")
    if args.node is not None and not node:
        parser.error("--node needs a name (or NODE_NAME)")
    if args.endpoint is None and (node is None or args.kubelet_dir is None):
        parser.error("--endpoint is required, unless a node plugin is given --kubelet-dir")
    configure_logging(parser)
    kube = Kube(Connection.load(args.kubeconfig, pool_size=4), timeout=30)
    settings = PluginSettings(
        controller=args.controller,
        node=node,
        endpoint=args.endpoint,
        kubelet_dir=args.kubelet_dir,
        host_root=args.host_root,
        credentials_namespace=args.credentials_namespace,
    )
    return run_until_signalled(kube, settings)


def add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator (StorageBackend reconciler and volume provisioner)",
        description="Run the operator: reconcile StorageBackends and provision volumes for "
        "claims of their StorageClasses, for the whole cluster.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(command=run_command, parser=parser)


def add_crds(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "crds",
        help="print the CustomResourceDefinitions (YAML) generated from the API models",
        description="Print the CRDs of stowage as YAML, e.g. `stowage crds | kubectl apply -f -`.",
    )
    parser.set_defaults(command=crds_command, parser=parser)


def add_agent(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run the mount helper of one backend on this node (started by the operator)",
        description="Keep one StorageBackend mounted on this node under "
        "/var/lib/stowage/mounts/<backend>, label the node mount.stowage.io/<backend>="
        "ready|failed, and make the directories of the backend's volumes. The operator runs "
        "it as a privileged DaemonSet per backend.",
    )
    parser.add_argument("--backend", required=True, help="the StorageBackend to serve")
    parser.add_argument("--node", default="", help="this node's name [env NODE_NAME]")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between checks [default 5]"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig (default: in-cluster)"
    )
    parser.set_defaults(command=agent_command, parser=parser)


def add_nas_server(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nas-server",
        help="run the NFS or SMB server of one NASShare (started by the operator)",
        description="Run NFS-Ganesha (nfs) or Samba (smb) with the given configuration, and "
        "reload it whenever the file (or, for smb, the users' Secret) changes.",
    )
    parser.add_argument("protocol", choices=("nfs", "smb"))
    parser.add_argument("--config", type=Path, required=True, help="ganesha.conf or smb.conf")
    parser.add_argument(
        "--users", type=Path, default=None, help="smb: the mounted Secret of users and passwords"
    )
    parser.add_argument(
        "--exported", type=Path, required=True, help="the shared directory (made if missing)"
    )
    parser.add_argument(
        "--recovery", type=Path, required=True, help="NFSv4 recovery state (made if missing)"
    )
    parser.add_argument(
        "--data",
        default="/data",
        help="nfs: where the data claim is mounted (its NFS server, when the configuration "
        "proxies it)",
    )
    parser.add_argument(
        "--lease",
        default="",
        help="serve only while this pod (env POD_NAME, POD_NAMESPACE) holds this Lease",
    )
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: in-cluster")
    parser.set_defaults(command=nas_server_command, parser=parser)


def add_csi(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "csi",
        help="serve the CSI driver csi.stowage.io on a unix socket",
        description="Serve the CSI Identity service with the Controller service (--controller), "
        "the Node service of one node (--node), or both, on the unix socket --endpoint. A node "
        "plugin given --kubelet-dir registers with the kubelet and serves by default on "
        "<kubelet dir>/plugins/csi.stowage.io/csi.sock.",
    )
    parser.add_argument("--endpoint", type=Path, default=None, help="the unix socket's path")
    parser.add_argument("--controller", action="store_true", help="serve the Controller service")
    parser.add_argument(
        "--node",
        nargs="?",
        const="",
        default=None,
        help="serve the Node service as this node [env NODE_NAME when given no name]",
    )
    parser.add_argument(
        "--kubelet-dir", type=Path, default=None, help="the kubelet's root directory, to register"
    )
    parser.add_argument(
        "--host-root",
        type=Path,
        default=Path("/"),
        help="where the node's / is mounted (node plugin in a container) [default /]",
    )
    parser.add_argument(
        "--credentials-namespace",
        default=os.environ.get("POD_NAMESPACE", "stowage-system"),
        help="where the operator keeps the node side's copies of backends' Secrets "
        "[env POD_NAMESPACE, else stowage-system]",
    )
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: in-cluster")
    parser.set_defaults(command=csi_command, parser=parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stowage", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"stowage {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_run(subparsers)
    add_crds(subparsers)
    add_agent(subparsers)
    add_nas_server(subparsers)
    add_csi(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    return command(args, args.parser)
