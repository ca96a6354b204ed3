"""Process-wide logging: text for people, JSON for log collectors.

kopf tags the records of its per-object loggers with `k8s_ref`; both formats turn that into one
`object` field (`Kind namespace/name`) so a line always says which object it is about.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from stowage.settings import LogFormat, LogLevel

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(object_suffix)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "message")
JSON_OUTPUT_FIELDS = frozenset({"time", "level", "logger", "message", "object", "exc_info"})
# Libraries whose debug output drowns everything else (wire dumps of every request).
NOISY_LOGGERS = ("urllib3", "aiohttp.access", "asyncio")
# kopf logs every successful indexer, timer and event handler call at INFO: only from debug on.
CHATTY_LOGGERS = ("kopf.objects",)


class ObjectReference(logging.Filter):
    """Turns kopf's `k8s_ref` extra into `object` (and a text suffix); drops kopf's own flags."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref: dict[str, Any] | None = record.__dict__.pop("k8s_ref", None)
        record.__dict__.pop("k8s_skip", None)
        described = describe_reference(ref) if ref else ""
        record.object = described
        record.object_suffix = f" [{described}]" if described else ""
        return True


def describe_reference(ref: dict[str, Any]) -> str:
    namespace = ref.get("namespace")
    name = ref.get("name", "?")
    kind = ref.get("kind", "")
    qualified = f"{namespace}/{name}" if namespace else str(name)
    return f"{kind} {qualified}".strip()


class StructuredFormatter(JsonFormatter):
    """One JSON object per line; `object` only when the record is about one.

    Only the known fields are written: kopf passes its live settings object as a record extra,
    which neither serializes nor belongs in a log line.
    """

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        kept = {key: value for key, value in log_data.items() if key in JSON_OUTPUT_FIELDS}
        if not kept.get("object"):
            kept.pop("object", None)
        return kept


def configure(log_format: LogFormat, level: LogLevel) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ObjectReference())
    if log_format is LogFormat.JSON:
        handler.setFormatter(
            StructuredFormatter(
                list(JSON_FIELDS),
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.value.upper())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(
            root.level if root.level <= logging.DEBUG else logging.WARNING
        )
