"""Messages the gateway holds until their schedule_delivery_time: one heap and one delayed call
for all of them (never a timer per message), so cancel_sm and replace_sm can take a message
back before it leaves."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from smppgw.store.base import MessageRecord


class Held:
    def __init__(self, clock: IReactorTime, release: Callable[[MessageRecord], None]) -> None:
        self.clock, self.release = clock, release
        self._due: dict[str, float] = {}  # message id -> when it leaves; absent: not held
        self._heap: list[tuple[float, int, MessageRecord]] = []
        self._order = itertools.count()
        self._timer: IDelayedCall | None = None
        self._timer_at = float("inf")

    def hold(self, record: MessageRecord) -> None:
        due = record.schedule_at if record.schedule_at is not None else self.clock.seconds()
        self._due[record.id] = due
        heapq.heappush(self._heap, (due, next(self._order), record))
        if due < self._timer_at:
            self._arm(due)

    def holds(self, message_id: str) -> bool:
        return message_id in self._due

    def take(self, message_id: str) -> bool:
        """Stop holding a message (cancelled or replaced); False if it was not held."""
        return self._due.pop(message_id, None) is not None

    def __len__(self) -> int:
        return len(self._due)

    def _arm(self, due: float) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer_at = due
        self._timer = self.clock.callLater(max(0.0, due - self.clock.seconds()), self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self.clock.seconds()
        while self._heap and self._heap[0][0] <= now:
            due, _, record = heapq.heappop(self._heap)
            if self._due.get(record.id) == due:  # else taken back, or held again for another time
                del self._due[record.id]
                self.release(record)
        while self._heap and self._due.get(self._heap[0][2].id) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale entries at the top would only wake us for nothing
        if self._heap:
            self._arm(self._heap[0][0])

    def forget_all(self) -> None:
        """Hold nothing more (another process owns these messages now)."""
        self._due.clear()
        self._heap.clear()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
