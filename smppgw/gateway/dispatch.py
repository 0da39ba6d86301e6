"""Dispatch: stored messages to providers, in batches, within each provider's limits.

One queue per provider. A message waits in the queue until the provider has a free request
slot (limits.max_concurrency); then up to limits.batch_size messages go in one `send`. A
Retryable failure puts the message back after an exponential backoff with jitter (or the
provider's Retry-After); after max_attempts on one provider the next provider of its route
gets it; when none is left the message fails for good. Results go to the gateway through
`on_result`, which owns the message state.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IReactorTime

from smppgw.aio import start
from smppgw.config import DispatchConfig
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import OutboundSms, Provider, ProviderError, Retryable, SendResult
from smppgw.store.base import MessageRecord

log = logging.getLogger("smppgw.dispatch")

# (record, result) for a send that ended (accepted or refused for good).
ResultSink = Callable[[MessageRecord, SendResult], None]
ToOutbound = Callable[[MessageRecord], OutboundSms]


class _Lane:
    __slots__ = ("provider", "queue", "in_flight", "gauge")

    def __init__(self, provider: Provider, gauge: object) -> None:
        self.provider = provider
        self.queue: deque[MessageRecord] = deque()
        self.in_flight = 0
        self.gauge = gauge


class Dispatcher:
    def __init__(
        self,
        providers: dict[str, Provider],
        config: DispatchConfig,
        clock: IReactorTime,
        metrics: Metrics,
        on_result: ResultSink,
        to_outbound: ToOutbound,
        failover: Callable[[MessageRecord], str | None],
    ) -> None:
        self.config, self.clock, self.metrics = config, clock, metrics
        self.on_result, self.to_outbound, self.failover = on_result, to_outbound, failover
        self.lanes = {
            name: _Lane(p, metrics.child(metrics.dispatch_queue, name)) for name, p in providers.items()
        }
        self._attempts: dict[str, int] = {}  # message id -> attempts on its current provider
        self._stopping = False

    def enqueue(self, record: MessageRecord) -> None:
        lane = self.lanes[record.provider]
        lane.queue.append(record)
        self._pump(lane)

    def queued(self) -> int:
        return sum(len(lane.queue) + lane.in_flight for lane in self.lanes.values())

    def stop(self) -> None:
        self._stopping = True

    def _pump(self, lane: _Lane) -> None:
        limits = lane.provider.limits
        while lane.queue and lane.in_flight < limits.max_concurrency and not self._stopping:
            batch = [lane.queue.popleft() for _ in range(min(limits.batch_size, len(lane.queue)))]
            lane.in_flight += 1
            task = start(self._send(lane, batch))
            task.add_done_callback(lambda t: t.exception())  # errors are handled inside _send
        lane.gauge.set(len(lane.queue))  # type: ignore[attr-defined]

    async def _send(self, lane: _Lane, batch: list[MessageRecord]) -> None:
        provider = lane.provider
        t0 = time.perf_counter()
        try:
            results: Sequence[SendResult] = await provider.send([self.to_outbound(r) for r in batch])
            outcome = "ok"
        except ProviderError as e:
            results = [SendResult(r.id, error=e) for r in batch]
            outcome = (
                "retryable"
                if e.retryable
                else ("misconfigured" if type(e).__name__ == "Misconfigured" else "refused")
            )
            event(
                log,
                "provider_send_failed",
                logging.ERROR if outcome == "misconfigured" else logging.WARNING,
                provider=provider.name,
                messages=len(batch),
                outcome=outcome,
                detail=e.detail,
            )
        except Exception as e:  # an adapter bug: retry like a transport error, and say so loudly
            log.exception("event=provider_send_crashed provider=%s", provider.name)
            results = [SendResult(r.id, error=Retryable(f"adapter error {type(e).__name__}")) for r in batch]
            outcome = "error"
        finally:
            lane.in_flight -= 1
        self.metrics.child(self.metrics.provider_latency, provider.name, "send").observe(
            time.perf_counter() - t0
        )
        self.metrics.child(self.metrics.provider_requests, provider.name, "send", outcome).inc()
        by_id = {res.message_id: res for res in results}
        for record in batch:
            res = by_id.get(record.id) or SendResult(record.id, error=Retryable("no result for this message"))
            if res.error is not None and res.error.retryable:
                self._retry(record, res.error)
            else:
                self._attempts.pop(record.id, None)
                self.on_result(record, res)
        self._pump(lane)

    def _retry(self, record: MessageRecord, error: ProviderError) -> None:
        n = self._attempts.get(record.id, 0) + 1
        record.attempts += 1
        if n >= self.config.max_attempts:
            nxt = self.failover(record)
            self._attempts.pop(record.id, None)
            if nxt is None:
                self.on_result(record, SendResult(record.id, error=error))
                return
            event(log, "failover", message_id=record.id, provider=record.provider, to=nxt)
            record.provider = nxt
            self.enqueue(record)
            return
        self._attempts[record.id] = n
        delay = min(self.config.retry_initial * 2 ** (n - 1), self.config.retry_max)
        delay = delay * (0.5 + random.random() / 2)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        self.clock.callLater(delay, self._requeue, record)

    def _requeue(self, record: MessageRecord) -> None:
        if not self._stopping:
            self.enqueue(record)
