"""Limits that hold for every gateway process together: a token bucket and a provider's request
slots kept in Redis, lent to each process in small amounts so that taking a token or a slot
stays a local, synchronous step (no round trip per message).

A process holds at most `chunk` tokens of a bucket it has not spent, and asks for more when
half are gone; so the whole cluster goes over a rate by at most one chunk per process. Slots are
held while requests run and given back when a provider's lane has been idle for a moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from smppgw.aio import start

log = logging.getLogger("smppgw.store.redis")

Ask = Callable[[list[Any]], Awaitable[Any]]  # runs one script with these args

LINGER = 0.5  # seconds an idle process keeps slots before giving them back


class LeasedBucket:
    """A token bucket in Redis (script BUCKET); tokens come to this process in chunks."""

    def __init__(self, name: str, rate: float, burst: float, ask: Ask) -> None:
        self.name, self.rate, self.burst = name, rate, burst
        self.chunk = max(1, min(int(burst), int(rate * 0.05)))
        self.tokens = 0
        self.refused = 0
        self._ask = ask
        self._asking = False
        self._wait_ms = 0
        self._lend()

    def take(self, now: float) -> bool:
        if self.tokens >= 1:
            self.tokens -= 1
            if self.tokens * 2 < self.chunk:
                self._lend()
            return True
        self._lend()
        self.refused += 1
        return False

    def level(self, now: float) -> float:
        """The tokens this process holds (the rest of the cluster's bucket is in Redis)."""
        return float(self.tokens)

    def wait(self) -> float:
        if self._asking:
            return 0.005
        return max(0.001, self._wait_ms / 1000)

    def _lend(self) -> None:
        if not self._asking and self.tokens < self.chunk:
            self._asking = True
            start(self._get(self.chunk - self.tokens))

    async def _get(self, want: int) -> None:
        try:
            got, wait = await self._ask([self.name, repr(self.rate), repr(self.burst), want])
            self.tokens += int(got)
            self._wait_ms = int(wait)
        except Exception as e:  # the store is down: no tokens, the caller refuses or waits
            self._wait_ms = 1000
            log.debug("bucket %s: %r", self.name, e)
        finally:
            self._asking = False


class SharedSlots:
    """A provider's max_concurrency for every process together (script SLOTS)."""

    def __init__(self, name: str, limit: int, wake: Callable[[], None], ask: Ask) -> None:
        self.name, self.limit, self.wake = name, limit, wake
        self.held = 0  # slots Redis counts as ours
        self.busy = 0  # of those, in use by a request
        self._ask = ask
        self._asking = False
        self._linger: asyncio.TimerHandle | None = None

    def take(self) -> bool:
        if self.busy < self.held:
            self.busy += 1
            return True
        if not self._asking and self.held < self.limit:
            self._asking = True
            start(self._get(max(1, min(self.held, self.limit - self.held))))
        return False

    def give(self) -> None:
        self.busy = max(0, self.busy - 1)
        if self.busy == 0 and self.held and self._linger is None:
            self._linger = asyncio.get_event_loop().call_later(LINGER, self._idle)

    def _idle(self) -> None:
        self._linger = None
        spare = self.held - self.busy
        if self.busy == 0 and spare > 0 and not self._asking:
            self.held -= spare
            start(self._put(spare))

    async def _get(self, want: int) -> None:
        got = 0
        try:
            got = int(await self._ask([self.name, self.limit, want]))
        except Exception as e:
            log.debug("slots %s: %r", self.name, e)
        finally:
            self._asking = False
        self.held += got
        if got:
            self.wake()
        else:
            # every slot is held elsewhere (or the store is down): look again shortly
            asyncio.get_event_loop().call_later(0.05, self.wake)

    async def _put(self, count: int) -> None:
        try:
            await self._ask([self.name, self.limit, -count])
        except Exception as e:  # the slots come free when this process's heartbeat ends
            log.debug("slots %s: %r", self.name, e)
