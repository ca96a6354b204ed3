"""The `stowage` command: `run` the operator, print the `crds`.

Each subcommand is one `add_*` function registering its parser and the function that runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stowage", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"stowage {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_run(subparsers)
    add_crds(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    return command(args, args.parser)
