"""Log lines: one JSON object per line naming the object; never a crash on kopf's extras."""

from __future__ import annotations

import io
import json
import logging
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from stowage import logging as stowage_logging
from stowage.settings import LogFormat, LogLevel

pytestmark = pytest.mark.unit


@dataclass
class PostingSettings:
    enabled: bool = False  # kopf's Event poster, once kopf is loaded, reads this
    level: int = logging.INFO
    loggers: bool = False


@dataclass
class Unserializable:
    """Like kopf's settings, which it passes as a record extra: holds a queue."""

    queue: queue.SimpleQueue[int] = field(default_factory=queue.SimpleQueue)
    posting: PostingSettings = field(default_factory=PostingSettings)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stowage_logging.configure(LogFormat.JSON, LogLevel.INFO)
    (handler,) = logging.getLogger().handlers
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    logging.getLogger().handlers.clear()


def test_json_lines_name_the_object_and_drop_kopf_internals(captured: io.StringIO) -> None:
    ref = {"kind": "StorageBackend", "name": "nfs-a"}
    extra = {"k8s_ref": ref, "k8s_skip": False, "settings": Unserializable()}
    logging.getLogger("kopf.objects").error("Handler 'finalize' failed temporarily", extra=extra)
    (line,) = captured.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert record["logger"] == "kopf.objects"
    assert record["object"] == "StorageBackend nfs-a"
    assert record["message"] == "Handler 'finalize' failed temporarily"
    assert set(record) == {"time", "level", "logger", "message", "object"}


def test_exceptions_are_kept_in_the_json_line(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("stowage.test").exception("it failed")
    (line,) = captured.getvalue().splitlines()
    record = json.loads(line)
    assert "RuntimeError: boom" in record["exc_info"]
    assert "object" not in record
