"""The operator's settings: one table of options, read from flags, then `STOWAGE_*`, then defaults.

Every option is declared once in `OPTIONS`; the CLI builds its flags and `--help` from that table,
and `Settings.resolve` applies the precedence (command line > environment > default).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

ENV_PREFIX = "STOWAGE_"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Settings:
    """What `stowage run` needs to know; immutable once resolved."""

    kubeconfig: Path | None = None
    namespace: str = "stowage-system"
    log_format: LogFormat = LogFormat.TEXT
    log_level: LogLevel = LogLevel.INFO
    bind_address: str = "0.0.0.0"
    health_port: int = 8080
    metrics_port: int = 9090
    resync_interval: float = 10.0
    workers: int = 16
    api_timeout: float = 30.0
    helper_namespace: str = ""
    helper_image: str = "localhost/stowage/helper:0.1.0"
    helper_image_pull_policy: str = "IfNotPresent"
    helper_service_account: str = "stowage-helper"

    @property
    def helpers_namespace(self) -> str:
        """Where the helper DaemonSets run: their own namespace, else the operator's."""
        return self.helper_namespace or self.namespace

    @classmethod
    def resolve(cls, args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
        """Command line first, then `STOWAGE_<NAME>`, then the default; raises ValueError."""
        values: dict[str, object] = {}
        for option in OPTIONS:
            from_flag = getattr(args, option.field, None)
            source = option.flag if from_flag is not None else option.env_var
            raw = from_flag if from_flag is not None else env.get(option.env_var)
            if raw is None:
                continue
            try:
                values[option.field] = option.parse(str(raw))
            except ValueError as error:
                raise ValueError(f"{source}: {error}") from error
        return cls(**values)  # type: ignore[arg-type]  # the table guarantees each field's type


@dataclass(frozen=True)
class Option:
    field: str
    help: str
    parse: Callable[[str], object]
    metavar: str
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.field.upper()

    @property
    def default(self) -> object:
        return next(f.default for f in dataclasses.fields(Settings) if f.name == self.field)


def _port(raw: str) -> int:
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError(f"{raw} is not a TCP port")
    return port


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(f"{raw} is not a positive number")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{raw} is not a positive integer")
    return value


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


OPTIONS: tuple[Option, ...] = (
    Option(
        "kubeconfig",
        "kubeconfig file of the cluster to manage (default: in-cluster service account, "
        "else $KUBECONFIG or ~/.kube/config)",
        Path,
        "PATH",
    ),
    Option(
        "namespace",
        "namespace the operator runs in (where its helpers will live)",
        _non_empty,
        "NAME",
    ),
    Option("log_format", "log line format", LogFormat, "FORMAT", tuple(f.value for f in LogFormat)),
    Option(
        "log_level",
        "least severe level logged",
        LogLevel,
        "LEVEL",
        tuple(v.value for v in LogLevel),
    ),
    Option("bind_address", "address the health and metrics servers listen on", _non_empty, "ADDR"),
    Option("health_port", "port of /healthz (liveness)", _port, "PORT"),
    Option("metrics_port", "port of /metrics (Prometheus) and /readyz (readiness)", _port, "PORT"),
    Option(
        "resync_interval",
        "seconds between re-checks of each StorageBackend (CSI drivers, Secrets, volume count)",
        _positive_float,
        "SECONDS",
    ),
    Option("workers", "threads that run blocking Kubernetes API calls", _positive_int, "COUNT"),
    Option(
        "api_timeout",
        "seconds before one Kubernetes API request gives up",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "helper_namespace",
        "namespace of the mount-helper DaemonSets; must allow privileged pods "
        "(empty: the operator's namespace)",
        str,
        "NAME",
    ),
    Option("helper_image", "image of the mount helpers", _non_empty, "IMAGE"),
    Option(
        "helper_image_pull_policy",
        "pull policy of the helper image",
        str,
        "POLICY",
        ("Always", "IfNotPresent", "Never"),
    ),
    Option(
        "helper_service_account",
        "ServiceAccount the helpers run as (in the helper namespace)",
        _non_empty,
        "NAME",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; the help names its environment variable and default."""
    for option in OPTIONS:
        default = option.default
        shown = "none" if default is None else str(default)
        parser.add_argument(
            option.flag,
            dest=option.field,
            metavar=option.metavar,
            choices=option.choices or None,
            default=None,
            help=f"{option.help} [env {option.env_var}; default {shown}]",
        )
