"""What every handler needs: settings, the API client, the retry queue, the I/O threads.

Handlers are coroutines: they read kopf's indexes in the event loop (where kopf updates them)
and hand each blocking API call to the thread pool with `Runtime.call`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from stowage.kube import Kube
from stowage.reconcilers.retry import Retrier
from stowage.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    kube: Kube
    retrier: Retrier
    executor: Executor

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
