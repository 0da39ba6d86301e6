"""Dispatch: stored messages to providers, in batches, within each provider's limits.

One lane per provider. A message waits in its lane until the provider has a free request slot
(limits.max_concurrency) and, for an adapter without HTTP (the simulator), a token of its
request rate (limits.requests_per_second); then up to limits.batch_size messages go in one `send`.
An HTTP adapter's rate is kept by its client's pacer instead (providers/pacing.py), which every
request of the adapter waits for: status polls, balance, sender lists and logins count as sends do.

A Retryable failure puts the message back after an exponential backoff with jitter (or the
provider's Retry-After). After `max_attempts` on one provider, or while that provider's circuit
breaker is open, the message moves to the next provider of its route; when none is left it
fails for good. The breaker opens after `breaker_threshold` failed requests in a row and lets
one request through after `breaker_cooldown` seconds. Results go to the gateway through
`on_result`, which owns the message state.

With a store shared by several gateway processes, a provider's request rate and concurrency
hold for all of them together (`store.bucket`, `store.slots`), and no request starts while
`store.may_send()` is False: this process is then not sure it still owns its messages.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from smppgw.aio import start
from smppgw.config import DispatchConfig
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import (
    EXPIRED,
    Misconfigured,
    OutboundSms,
    Provider,
    ProviderError,
    Retryable,
    SendResult,
)
from smppgw.store.base import Bucket, MessageRecord, Slots, Store
from smppgw.tokens import TokenBucket

log = logging.getLogger("smppgw.dispatch")

SEND_CHECK = 0.5  # seconds between looks at the lease while this process may not send

ResultSink = Callable[[MessageRecord, SendResult], None]  # a send that ended: accepted or refused


class Breaker:
    """Consecutive request failures open it; after the cool-down one trial request decides."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False  # a half-open trial request is in flight

    def allows(self, now: float) -> bool:
        if self.opened_at is None:
            return True
        if now - self.opened_at >= self.cooldown and not self.trial:
            self.trial = True
            return True
        return False

    def is_open(self, now: float) -> bool:
        return self.opened_at is not None and (now - self.opened_at < self.cooldown or self.trial)

    def record(self, ok: bool, now: float) -> bool:
        """Count one request; True when this opened the breaker."""
        self.trial = False
        if ok:
            self.failures, self.opened_at = 0, None
            return False
        self.failures += 1
        if self.failures >= self.threshold:
            was_closed = self.opened_at is None
            self.opened_at = now
            return was_closed
        return False


class _Lane:
    __slots__ = (
        "provider",
        "queue",
        "in_flight",
        "gauge",
        "breaker",
        "bucket",
        "wakeup",
        "pump_due",
        "paused",
        "last_error",
        "slots",
    )

    def __init__(self, provider: Provider, gauge: object, breaker: Breaker) -> None:
        self.provider = provider
        self.queue: deque[MessageRecord] = deque()
        self.in_flight = 0
        self.gauge = gauge
        self.breaker = breaker
        self.bucket: Bucket | None = None  # its requests/s (None: no limit)
        self.slots: Slots | None = None  # its max_concurrency shared with other processes
        self.wakeup: IDelayedCall | None = None
        self.pump_due = False
        self.paused = False  # by an operator (admin API) or because the provider left the config
        self.last_error: tuple[float, str, str] | None = None  # (when, outcome, detail)


class Dispatcher:
    def __init__(
        self,
        providers: dict[str, Provider],
        config: DispatchConfig,
        clock: IReactorTime,
        metrics: Metrics,
        on_result: ResultSink,
        to_outbound: Callable[[MessageRecord], OutboundSms],
        failover: Callable[[MessageRecord], str | None],
        retries: Callable[[MessageRecord], bool] = lambda record: True,
        note: Callable[..., None] = lambda message_id, what, **detail: None,
        store: Store | None = None,
    ) -> None:
        self.config, self.clock, self.metrics = config, clock, metrics
        self.on_result, self.to_outbound, self.failover = on_result, to_outbound, failover
        self.retries = retries  # False: a retryable failure is reported at once (ack = "provider")
        self.note = note  # a step of the message's trail (an attempt that failed, a failover)
        self.store = store  # buckets, slots and the right to send, when shared with other processes
        self.lanes: dict[str, _Lane] = {}
        for name, p in providers.items():
            self.set_provider(name, p)
        self._attempts: dict[str, int] = {}  # message id -> attempts on its current provider
        self._stopping = False
        self._epoch = 0  # retries scheduled before forget_all belong to messages no longer ours

    def enqueue(self, record: MessageRecord) -> None:
        lane = self.lanes[record.provider]
        if lane.breaker.is_open(self.clock.seconds()) and self._move_on(record, "breaker_open"):
            return
        if lane.paused and self._move_on(record, "paused"):
            return
        lane.queue.append(record)
        if not lane.pump_due:
            # once per loop turn, not per message: everything committed in one batch goes out
            # in one provider request instead of one request (and one task) each
            lane.pump_due = True
            self.clock.callLater(0, self._pump_soon, lane)

    def _pump_soon(self, lane: _Lane) -> None:
        lane.pump_due = False
        self._pump(lane)

    def queued(self) -> int:
        return sum(len(lane.queue) + lane.in_flight for lane in self.lanes.values())

    def stop(self) -> None:
        self._stopping = True
        for lane in self.lanes.values():
            if lane.wakeup is not None and lane.wakeup.active():
                lane.wakeup.cancel()

    def forget_all(self) -> None:
        """Drop every queued message and pending retry (another process owns them now)."""
        self._epoch += 1
        self._attempts.clear()
        for lane in self.lanes.values():
            lane.queue.clear()
            lane.gauge.set(0)  # type: ignore[attr-defined]

    # -- sending ------------------------------------------------------------------------------

    def _pump(self, lane: _Lane) -> None:
        limits = lane.provider.limits
        now = self.clock.seconds()
        while lane.queue and lane.in_flight < limits.max_concurrency and not self._stopping:
            if lane.paused:
                break  # what could not fail over waits here until resume
            if self.store is not None and not self.store.may_send():
                self._wake(lane, SEND_CHECK)  # not sure we still own these: wait for the lease
                break
            if not lane.breaker.allows(now):
                self._drain_open(lane)
                break
            if lane.slots is not None and not lane.slots.take():
                break  # the other processes hold every slot; `wake` pumps again when one is ours
            if lane.bucket is not None and not lane.bucket.take(now):
                if lane.slots is not None:
                    lane.slots.give()
                self._wake(lane, lane.bucket.wait())
                break
            batch = [lane.queue.popleft() for _ in range(min(limits.batch_size, len(lane.queue)))]
            lane.in_flight += 1
            start(self._send(lane, batch))
        lane.gauge.set(len(lane.queue))  # type: ignore[attr-defined]

    def _wake(self, lane: _Lane, delay: float) -> None:
        if lane.wakeup is None or not lane.wakeup.active():
            lane.wakeup = self.clock.callLater(delay, self._pump, lane)

    def _drain_open(self, lane: _Lane) -> None:
        """The breaker is open: queued messages go to their next provider where they have one."""
        keep: deque[MessageRecord] = deque()
        while lane.queue:
            record = lane.queue.popleft()
            if not self._move_on(record, "breaker_open"):
                keep.append(record)
        lane.queue = keep
        if keep and (lane.wakeup is None or not lane.wakeup.active()):
            lane.wakeup = self.clock.callLater(lane.breaker.cooldown, self._pump, lane)

    async def _send(self, lane: _Lane, batch: list[MessageRecord]) -> None:
        provider = lane.provider
        t0 = time.perf_counter()
        failed: ProviderError | None = None
        try:
            results: Sequence[SendResult] = await provider.send([self.to_outbound(r) for r in batch])
            outcome = "ok"
        except ProviderError as e:
            failed = e
            results = [SendResult(r.id, error=e) for r in batch]
            outcome = _outcome(e)
            level = logging.ERROR if isinstance(e, Misconfigured) else logging.WARNING
            event(
                log,
                "provider_send_failed",
                level,
                provider=provider.name,
                messages=len(batch),
                outcome=outcome,
                detail=e.detail,
            )
        except Exception as e:  # an adapter bug: retry like a transport error, and say so loudly
            log.exception("event=provider_send_crashed provider=%s", provider.name)
            failed = Retryable(f"adapter error {type(e).__name__}")
            results = [SendResult(r.id, error=failed) for r in batch]
            outcome = "error"
        finally:
            lane.in_flight -= 1
            if lane.slots is not None:
                lane.slots.give()
        if failed is not None:
            lane.last_error = (self.clock.seconds(), outcome, failed.detail)
        self.metrics.child(self.metrics.provider_latency, provider.name, "send").observe(
            time.perf_counter() - t0
        )
        self.metrics.child(self.metrics.provider_requests, provider.name, "send", outcome).inc()
        broken = failed is not None and (failed.retryable or isinstance(failed, Misconfigured))
        if lane.breaker.record(not broken, self.clock.seconds()):
            event(
                log,
                "breaker_open",
                logging.ERROR,
                provider=provider.name,
                failures=lane.breaker.failures,
                cooldown=lane.breaker.cooldown,
            )
        by_id = {res.message_id: res for res in results}
        for record in batch:
            res = by_id.get(record.id) or SendResult(record.id, error=Retryable("no result for this message"))
            if res.error is not None and isinstance(res.error, Misconfigured) and failed is None:
                self.metrics.child(
                    self.metrics.provider_requests, provider.name, "send", "misconfigured"
                ).inc()
            if res.error is not None and res.error.retryable and self.retries(record):
                self._retry(record, res.error)
            else:
                self._attempts.pop(record.id, None)
                self.on_result(record, res)
        self._pump(lane)

    # -- operator controls (admin API, config reload) ------------------------------------------

    def pause(self, name: str) -> tuple[int, int]:
        """No new requests to this provider: queued messages go to the next provider of their
        route where they have one, the rest wait in the lane. Returns (moved, waiting)."""
        lane = self.lanes[name]
        lane.paused = True
        queued, lane.queue = lane.queue, deque()
        moved = 0
        for record in queued:
            if self._move_on(record, "paused"):
                moved += 1
            else:
                lane.queue.append(record)
        lane.gauge.set(len(lane.queue))  # type: ignore[attr-defined]
        return moved, len(lane.queue)

    def resume(self, name: str) -> int:
        """Requests flow again; returns how many messages were waiting."""
        lane = self.lanes[name]
        lane.paused = False
        waiting = len(lane.queue)
        self._pump(lane)
        return waiting

    def circuits(self) -> list[tuple[str, bool]]:
        """(provider, tripped) for the metrics scrape: tripped from the breaker's opening until
        a request succeeds again (open or half-open)."""
        return [(name, lane.breaker.opened_at is not None) for name, lane in self.lanes.items()]

    def set_provider(self, name: str, provider: Provider) -> None:
        """A new adapter (a config reload) for new requests; a new lane for a new provider.
        Requests already in flight finish on the adapter they started with."""
        lane = self.lanes.get(name)
        fresh = lane is None
        if lane is None:
            lane = self.lanes[name] = _Lane(
                provider,
                self.metrics.child(self.metrics.dispatch_queue, name),
                Breaker(self.config.breaker_threshold, self.config.breaker_cooldown),
            )
        lane.provider = provider
        limits, now = provider.limits, self.clock.seconds()
        rate = limits.requests_per_second
        pacer = getattr(provider, "pacer", None)
        if pacer is not None:
            # An HTTP adapter paces every request it makes (polls, balance, logins too), and
            # sends with them: no bucket of the lane's own, or a send would count twice.
            pacer.set_rate(rate)
            shared = None
            if pacer.limited and self.store is not None:  # Redis: the limit holds for every process
                shared = self.store.slots(f"requests:{name}", pacer.count, pacer.wake)
            pacer.share(shared)
            lane.bucket = None
        elif not rate:
            lane.bucket = None
        elif self.store is None:
            lane.bucket = TokenBucket(rate, max(1.0, rate), now)
        else:
            lane.bucket = self.store.bucket(f"provider:{name}", rate, max(1.0, rate), now)
        if self.store is not None:
            wake = partial(self._pump, lane)
            lane.slots = self.store.slots(f"provider:{name}", limits.max_concurrency, wake)
        if not fresh:
            self._pump(lane)

    # -- retries and failover ---------------------------------------------------------------

    def _retry(self, record: MessageRecord, error: ProviderError) -> None:
        n = self._attempts.get(record.id, 0) + 1
        record.attempts += 1
        if n >= self.config.max_attempts:
            if not self._move_on(record, "attempts"):
                self._attempts.pop(record.id, None)
                self.on_result(record, SendResult(record.id, error=error))
            return
        self._attempts[record.id] = n
        delay = min(self.config.retry_initial * 2 ** (n - 1), self.config.retry_max)
        delay = delay * (0.5 + random.random() / 2)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        self.note(
            record.id,
            "attempt_failed",
            provider=record.provider,
            attempt=n,
            error=error.detail,
            retry_in=round(delay, 3),
        )
        self.clock.callLater(delay, self._requeue, record, self._epoch)

    def _move_on(self, record: MessageRecord, why: str) -> bool:
        """Give the message to the next provider of its route; False when there is none."""
        nxt = self.failover(record)
        if nxt is None or nxt not in self.lanes:
            return False
        event(log, "failover", message_id=record.id, provider=record.provider, to=nxt, reason=why)
        self.note(record.id, "failover", provider=record.provider, to=nxt, reason=why)
        self._attempts.pop(record.id, None)
        record.provider = nxt
        self.enqueue(record)
        return True

    def _requeue(self, record: MessageRecord, epoch: int) -> None:
        if self._stopping or epoch != self._epoch:
            return
        if record.valid_until is not None and self.clock.seconds() >= record.valid_until:
            # its validity ran out before any provider took it: EXPIRED, not one more attempt
            self._attempts.pop(record.id, None)
            self.on_result(record, SendResult(record.id, state=EXPIRED, provider_status="validity expired"))
            return
        self.enqueue(record)


def _outcome(e: ProviderError) -> str:
    if e.retryable:
        return "retryable"
    return "misconfigured" if isinstance(e, Misconfigured) else "refused"
