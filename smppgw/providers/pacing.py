"""Every request to a provider paced to its documented limit: sends, status polls, balance,
sender lists, MO polls and logins alike, since a provider counts them all against the account.

A provider counts a request when it arrives, and we cannot see that moment: it lies somewhere
between our start and the answer. So a request holds one of `count` permits from before it
starts until `period` after its answer (or its failure): then the arrivals of any `count + 1`
requests are at least `period` apart, whatever the latency, and no window of `period` seconds at
the provider holds more than `count` (SMS Club: 9 in any second). The price is throughput under
latency: `count / (period + latency)` requests/s at most.

Alone, the permits are this process's. With a store shared by several processes the gateway
hands the pacer the store's request slots (`share`), so the limit holds for all of them: a slot
is given back `period` after its request ended.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

Sleep = Callable[[float], Awaitable[None]]
SHARED_RETRY = 0.05  # seconds between looks while every shared slot is held elsewhere


class RequestPacer:
    def __init__(
        self,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()  # waiters go in the order they came
        self._freed = asyncio.Event()
        self._inflight = 0
        self._ends: deque[float] = deque()  # when recent requests ended (local permits)
        self._shared: Any = None  # the store's Slots (take/give), when shared
        self.count, self.period = 0, 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        """`rate` requests/s; None or 0: no limit. `count` permits per `period` seconds."""
        if not rate or rate <= 0:
            self.count, self.period = 0, 0.0
        else:
            self.count = max(1, int(rate))
            self.period = self.count / rate

    def share(self, slots: Any) -> None:
        """Take permits from the slots every process shares (`slots.take()` / `slots.give()`,
        with `wake` called when more may be had); None: this process's own permits."""
        self._shared = slots

    def wake(self) -> None:
        """A shared slot may be free now."""
        self._freed.set()

    @property
    def limited(self) -> bool:
        return self.count > 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a permit for one request: `async with pacer.turn(): <the request>`."""
        if not self.count:
            yield
            return
        async with self._lock:
            await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self._shared is not None:
            while not self._shared.take():
                self._freed.clear()
                try:
                    await asyncio.wait_for(self._freed.wait(), SHARED_RETRY * 4)
                except TimeoutError:
                    pass
            return
        while True:
            now = self._clock()
            while self._ends and now - self._ends[0] >= self.period:
                self._ends.popleft()
            if self._inflight + len(self._ends) < self.count:
                self._inflight += 1
                return
            if self._ends:
                await self._sleep(self.period - (now - self._ends[0]))
            else:  # every permit is in a request now: wait for one to end
                self._freed.clear()
                await self._freed.wait()

    def _release(self) -> None:
        if self._shared is not None:
            slots = self._shared
            asyncio.get_event_loop().call_later(self.period, self._give_back, slots)
            return
        self._inflight -= 1
        self._ends.append(self._clock())
        self._freed.set()

    def _give_back(self, slots: Any) -> None:
        slots.give()
        self._freed.set()
