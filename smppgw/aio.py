"""Bridges between Twisted Deferreds and asyncio on the one asyncio-reactor loop.

httpx (through anyio/sniffio) must run inside an asyncio Task, so every coroutine that
may reach a provider is started with `start` and, where Twisted code waits for it,
wrapped with `as_deferred`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred

T = TypeVar("T")


_running: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references to tasks


def start(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.get_event_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


def as_deferred(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Run `coro` as an asyncio Task and give its result as a Deferred."""
    return Deferred.fromFuture(start(coro))
