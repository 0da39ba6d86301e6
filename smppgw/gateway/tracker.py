"""Status tracking by polling, and the status horizon.

Messages accepted by a provider that does not push its reports (and, after a restart, every
unfinished message of a provider that can be polled) are polled in batches of the provider's
poll_batch_size, with a backoff between polls of one message, until a final status. A
message with no final status `status_horizon` seconds after submission gets a final
UNKNOWN from the gateway, whatever its provider.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from smppgw.aio import start
from smppgw.config import ProviderSettings
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import Provider, ProviderError, StatusReport
from smppgw.store.base import MessageRecord

log = logging.getLogger("smppgw.tracker")

RESUMED_FIRST_POLL = 1.0  # after a restart: ask soon, the answer may be waiting
TICK = 1.0
HORIZON_SWEEP = 60.0


class Tracker:
    def __init__(
        self,
        providers: dict[str, Provider],
        settings: dict[str, ProviderSettings],
        clock: IReactorTime,
        metrics: Metrics,
        horizon: float,
        lookup: Callable[[str], MessageRecord | None],
        unfinished: Callable[[], list[MessageRecord]],
        on_report: Callable[[str, StatusReport], None],
        on_horizon: Callable[[MessageRecord], None],
    ) -> None:
        self.providers, self.settings = providers, settings
        self.clock, self.metrics, self.horizon = clock, metrics, horizon
        self.lookup, self.unfinished, self.on_report, self.on_horizon = (
            lookup,
            unfinished,
            on_report,
            on_horizon,
        )
        self._heap: list[tuple[float, str, float]] = []  # (due, message id, gap used)
        self._tick: IDelayedCall | None = None
        self._sweep: IDelayedCall | None = None

    def start(self) -> None:
        self._sweep = self.clock.callLater(HORIZON_SWEEP, self.sweep)

    def stop(self) -> None:
        for call in (self._tick, self._sweep):
            if call is not None and call.active():
                call.cancel()

    def forget_all(self) -> None:
        """Stop polling every message (another process owns them now)."""
        self._heap.clear()

    def should_poll(self, record: MessageRecord, resumed: bool) -> bool:
        p = self.providers.get(record.provider)
        if p is None or not p.capabilities.poll or not record.provider_id:
            return False
        return resumed or not getattr(p, "pushes_reports", False)

    def track(self, record: MessageRecord, resumed: bool = False, gap: float | None = None) -> None:
        if gap is None:
            s = self.settings.get(record.provider)
            gap = RESUMED_FIRST_POLL if resumed or s is None else s.poll_first
        heapq.heappush(self._heap, (self.clock.seconds() + gap, record.id, gap))
        if self._tick is None or not self._tick.active():
            self._tick = self.clock.callLater(TICK, self.poll_due)

    def poll_due(self) -> None:
        now = self.clock.seconds()
        due: dict[str, list[tuple[MessageRecord, float]]] = {}
        while self._heap and self._heap[0][0] <= now:
            _, mid, gap = heapq.heappop(self._heap)
            record = self.lookup(mid)
            if record is None:
                continue  # final meanwhile
            if now >= record.submitted_at + self.horizon:
                self.on_horizon(record)
                continue
            due.setdefault(record.provider, []).append((record, gap))
        for name, items in due.items():
            size = self.providers[name].limits.poll_batch_size
            for i in range(0, len(items), size):
                start(self._poll(name, items[i : i + size]))
        self._tick = self.clock.callLater(TICK, self.poll_due) if self._heap else None

    async def _poll(self, name: str, items: list[tuple[MessageRecord, float]]) -> None:
        provider = self.providers[name]
        try:
            reports = await provider.poll([r.provider_id for r, _ in items])
            outcome = "ok"
        except ProviderError as e:
            reports, outcome = [], "retryable" if e.retryable else "refused"
            event(log, "poll_failed", logging.WARNING, provider=name, ids=len(items), detail=e.detail)
        except Exception:
            log.exception("event=poll_crashed provider=%s", name)
            reports, outcome = [], "error"
        self.metrics.child(self.metrics.provider_requests, name, "poll", outcome).inc()
        for report in reports:
            self.on_report(name, report)
        s = self.settings.get(name)
        max_gap = s.poll_max_gap if s is not None else 600.0
        for record, gap in items:
            if self.lookup(record.id) is not None:
                self.track(record, gap=min(max(gap, 1.0) * 2, max_gap))

    def sweep(self) -> None:
        """Final UNKNOWN for every message past the horizon (push providers included)."""
        limit = self.clock.seconds() - self.horizon
        for record in self.unfinished():
            if record.submitted_at <= limit:
                self.on_horizon(record)
        self._sweep = self.clock.callLater(HORIZON_SWEEP, self.sweep)
