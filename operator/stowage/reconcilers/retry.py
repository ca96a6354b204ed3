"""Retries with exponential backoff for work that kopf's event handlers do not retry themselves.

kopf's `on.event` handlers (used for claims and volumes, so that nothing is written onto those
objects) are fire-and-forget. An attempt that has to be repeated later (backend not ready yet, a
claim the driver cannot serve) is kept here, keyed by object, and run again when due. A newer
attempt for the same key (from a fresh watch event) replaces the waiting one. Everything runs in
the event loop; attempts do their blocking I/O in the executor themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stowage.backoff import doubling_pause

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    """An attempt's verdict: try again, no sooner than `base_delay` (doubling up to the cap)."""

    reason: str
    base_delay: float = 1.0


Attempt = Callable[[], Awaitable[Retry | None]]


@dataclass
class _Waiting:
    attempt: Attempt
    due: float


class Retrier:
    def __init__(self, max_delay: float = 300.0, tick: float = 0.5) -> None:
        self._max_delay = max_delay
        self._tick = tick
        self._waiting: dict[str, _Waiting] = {}
        self._failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Retry | None]] = set()

    async def run_now(self, key: str, attempt: Attempt) -> Retry | None:
        """Runs one attempt; schedules the next one if it asks to be retried."""
        self._waiting.pop(key, None)
        try:
            verdict = await attempt()
        except Exception:
            logger.exception("attempt for %s failed unexpectedly", key)
            verdict = Retry("UnexpectedError")
        if verdict is None:
            self._failures.pop(key, None)
        else:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = doubling_pause(verdict.base_delay, failures, self._max_delay)
            self._waiting[key] = _Waiting(attempt, time.monotonic() + delay)
        return verdict

    def forget(self, key: str) -> None:
        """The object is gone or no longer needs work."""
        self._waiting.pop(key, None)
        self._failures.pop(key, None)

    def waiting(self) -> list[str]:
        return sorted(self._waiting)

    def _take_due(self) -> list[tuple[str, Attempt]]:
        now = time.monotonic()
        due = [(key, w.attempt) for key, w in self._waiting.items() if w.due <= now]
        for key, _ in due:
            del self._waiting[key]
        return due

    async def serve(self) -> None:
        """Runs due attempts until cancelled."""
        while True:
            for key, attempt in self._take_due():
                task = asyncio.create_task(self.run_now(key, attempt), name=f"retry {key}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(self._tick)
