"""The receipt (and MO) outbox: deliver_sm that must reach an account's receiver.

A record is here from the commit that created it until the ESME answers its deliver_sm with
ESME_ROK (or a permanent refusal, or it grows too old). No receiver bound: it waits, and goes
out on the next bind. The gateway reaches sessions only through `DeliverySession`, so a
receipt never needs to know which socket holds the receiver.

deliver_sm_resp codes (smpp34.md §1.3): 0x64 and any other non-zero code, or no answer before
the response timer, are temporary (resend with backoff, the first within `retry_initial`);
0x65 and 0x66 are permanent (stop, count, log). A lost connection puts its in-flight records
back at the head of the queue at once.

With a store shared by several gateway processes the records of an account wait in the store,
not here: this outbox asks the store for as many as its receivers have room for
(`want_receipts`), and when the account's last receiver here goes, what it still holds goes
back to the store (`give_back`) for a receiver bound to another process. The bound on waiting
records per account then holds in the store, for all processes together.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from smppgw.config import ReceiptConfig
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.smpp.receipt import STAT_BY_STATE
from smppgw.store.base import (
    RECEIPT_DELIVERED,
    RECEIPT_DROPPED,
    RECEIPT_REFUSED,
    AddEvent,
    Op,
    OutboxRecord,
    ReceiptDone,
    RemoveOutbox,
    Store,
    TrailEvent,
)

log = logging.getLogger("smppgw.outbox")

LOST = -1  # the session went away before the answer came
TIMEOUT = -2  # no answer within the response timer
PERMANENT = (0x65, 0x66)  # ESME_RX_P_APPN, ESME_RX_R_APPN

Answer = Callable[[int], None]


class DeliverySession(Protocol):
    account: str

    def delivery_capacity(self) -> int:
        """How many more deliver_sm this session takes now (its window)."""
        ...

    def send_delivery(self, record: OutboxRecord, answer: Answer) -> None:
        """Send the record as a deliver_sm; `answer` gets the resp status, TIMEOUT or LOST."""
        ...


class _Account:
    __slots__ = ("name", "queue", "in_flight", "sessions", "turn", "retry_timers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue: deque[tuple[OutboxRecord, int]] = deque()  # (record, attempts so far)
        self.in_flight = 0
        self.sessions: list[DeliverySession] = []
        self.turn = 0
        self.retry_timers: dict[str, IDelayedCall] = {}


class Outbox:
    def __init__(self, store: Store, config: ReceiptConfig, clock: IReactorTime, metrics: Metrics) -> None:
        self.store, self.config, self.clock, self.metrics = store, config, clock, metrics
        self.shared = store.shared
        self._accounts: dict[str, _Account] = {}
        self._sweeper: IDelayedCall | None = None
        self._giving_back: set[str] = set()  # accounts whose records go back to the store next turn
        self._retrying: dict[str, OutboxRecord] = {}  # key -> a record waiting for its resend

    def _acct(self, name: str) -> _Account:
        a = self._accounts.get(name)
        if a is None:
            a = self._accounts[name] = _Account(name)
        return a

    # -- records in ---------------------------------------------------------------------------

    def load(self, records: list[OutboxRecord]) -> None:
        """Records found in the store at start (committed before a restart)."""
        for r in records:
            self._acct(r.account).queue.append((r, 0))
        for a in self._accounts.values():
            self._gauge(a)
        self._sweep_later()

    def add(self, record: OutboxRecord) -> None:
        """A committed record: queue it and send if a receiver has room."""
        a = self._acct(record.account)
        a.queue.append((record, 0))
        if not self.shared and len(a.queue) + a.in_flight + len(a.retry_timers) > self.config.max_per_account:
            old, _ = a.queue.popleft()
            self._drop(old, "overflow")
        self._pump(a)
        self._gauge(a)
        if self.shared and not a.sessions:
            self._give_back_soon(a)  # its receiver went while the store was handing it over

    def depth(self, account: str) -> int:
        a = self._accounts.get(account)
        return 0 if a is None else len(a.queue) + a.in_flight + len(a.retry_timers)

    def oldest(self, account: str) -> float | None:
        """created_at of the oldest receipt waiting in the queue (admin view; walks the queue)."""
        a = self._accounts.get(account)
        return None if a is None or not a.queue else min(r.created_at for r, _ in a.queue)

    # -- sessions -----------------------------------------------------------------------------

    def session_bound(self, session: DeliverySession) -> None:
        a = self._acct(session.account)
        a.sessions.append(session)
        self._pump(a)
        if self.shared:
            self._want(a)

    def session_gone(self, session: DeliverySession) -> None:
        a = self._accounts.get(session.account)
        if a is not None and session in a.sessions:
            a.sessions.remove(session)
            if self.shared and not a.sessions:
                self._give_back_soon(a)

    def window_open(self, session: DeliverySession) -> None:
        """A session's window has room again (an answer came)."""
        a = self._accounts.get(session.account)
        if a is None:
            return
        if a.queue:
            self._pump(a)
        elif self.shared:
            self._want(a)

    # -- a store shared with other processes ----------------------------------------------------

    def _want(self, a: _Account) -> None:
        room = sum(s.delivery_capacity() for s in a.sessions) - len(a.queue)
        if room > 0:
            self.store.want_receipts(a.name, room)

    def _give_back_soon(self, a: _Account) -> None:
        # next loop turn: the lost session's in-flight records come back to the queue first
        if a.name not in self._giving_back:
            self._giving_back.add(a.name)
            self.clock.callLater(0, self._give_back, a)

    def _give_back(self, a: _Account) -> None:
        self._giving_back.discard(a.name)
        if a.sessions:
            return  # a receiver bound again meanwhile
        records = [r for r, _ in a.queue]
        for key, timer in a.retry_timers.items():
            if timer.active():
                timer.cancel()
            retrying = self._retrying.pop(key, None)
            if retrying is not None:
                records.append(retrying)
        a.queue.clear()
        a.retry_timers.clear()
        self.store.want_receipts(a.name, 0)
        if records:
            self.store.give_back(records)
        self._gauge(a)

    def forget_shared(self) -> None:
        """This process was taken for dead: what it held may be with another process now."""
        if not self.shared:
            return
        for a in self._accounts.values():
            for timer in a.retry_timers.values():
                if timer.active():
                    timer.cancel()
            a.queue.clear()
            a.retry_timers.clear()
            self._gauge(a)
        self._retrying.clear()

    # -- sending ------------------------------------------------------------------------------

    def _pump(self, a: _Account) -> None:
        sessions = a.sessions
        while a.queue and sessions:
            chosen = None
            for i in range(len(sessions)):
                s = sessions[(a.turn + i) % len(sessions)]
                if s.delivery_capacity() > 0:
                    chosen = s
                    a.turn = (a.turn + i + 1) % len(sessions)
                    break
            if chosen is None:
                return
            record, attempts = a.queue.popleft()
            a.in_flight += 1
            chosen.send_delivery(record, self._answer_for(a, record, attempts, chosen))

    def _answer_for(self, a: _Account, record: OutboxRecord, attempts: int, to: DeliverySession) -> Answer:
        def answer(status: int) -> None:
            a.in_flight -= 1
            if status == 0:
                self._done(record, "delivered", getattr(to, "peer", ""))
            elif status in PERMANENT:
                event(
                    log,
                    "receipt_refused",
                    logging.WARNING,
                    account=a.name,
                    message_id=record.message_id,
                    status=hex(status),
                )
                self._done(record, "refused", getattr(to, "peer", ""))
            elif status == LOST:
                a.queue.appendleft((record, attempts))
                if self.shared and not a.sessions:
                    self._give_back_soon(a)
            else:
                self._retry(a, record, attempts + 1, status)
            self._gauge(a)
            if a.queue:
                self._pump(a)

        return answer

    def _retry(self, a: _Account, record: OutboxRecord, attempts: int, status: int) -> None:
        delay = min(self.config.retry_initial * (2 ** (attempts - 1)), self.config.retry_max)
        reason = "timeout" if status == TIMEOUT else hex(status)
        event(
            log,
            "receipt_retry",
            account=a.name,
            message_id=record.message_id,
            reason=reason,
            attempt=attempts,
            delay=delay,
        )
        self.metrics.child(
            self.metrics.receipts, a.name, STAT_BY_STATE.get(record.state, "MO"), "retry"
        ).inc()
        if record.esm_class & 0x04:  # a receipt (an MO has no message trail)
            retry = TrailEvent(self.clock.seconds(), "receipt_retry", {"reason": reason, "attempt": attempts})
            self.store.write([AddEvent(record.message_id, retry)], _log_failure(record))

        def again() -> None:
            a.retry_timers.pop(record.key, None)
            self._retrying.pop(record.key, None)
            a.queue.appendleft((record, attempts))
            self._pump(a)

        a.retry_timers[record.key] = self.clock.callLater(delay, again)
        if self.shared:
            self._retrying[record.key] = record

    def _done(self, record: OutboxRecord, result: str, to: str = "") -> None:
        """The record's deliver_sm ended (`result` delivered, refused, or why it was dropped)."""
        # perf (issue 11): straight into the CounterTable, no child lookup per receipt
        self.metrics.receipts.inc(record.account, STAT_BY_STATE.get(record.state, "MO"), result)
        now = self.clock.seconds()
        ops: list[Op]
        if record.on_row:
            code = _RESULT_CODES.get(result, RECEIPT_DROPPED)
            ops = [ReceiptDone(record.message_id, code, now, to if code != RECEIPT_DROPPED else result)]
        else:
            ops = [RemoveOutbox(record.key)]
            if record.esm_class & 0x04:  # an intermediate receipt: its message's trail says so
                detail = {"stat": STAT_BY_STATE.get(record.state, "?"), "result": result, "to": to}
                ops.append(AddEvent(record.message_id, TrailEvent(now, "receipt", detail)))
        self.store.write(ops, _log_failure(record))

    def dropped_in_store(self, account: str, message_id: str, state: int, why: str) -> None:
        """A shared store dropped a record nobody here held (too many or too old)."""
        event(log, "receipt_dropped", logging.WARNING, account=account, message_id=message_id, reason=why)
        self.metrics.child(self.metrics.receipts, account, STAT_BY_STATE.get(state, "MO"), why).inc()

    def _drop(self, record: OutboxRecord, why: str) -> None:
        event(
            log,
            "receipt_dropped",
            logging.WARNING,
            account=record.account,
            message_id=record.message_id,
            reason=why,
        )
        self._done(record, why)

    def _gauge(self, a: _Account) -> None:
        if self.shared:
            return  # the store's count of every process's waiting records (waiting_in_store)
        # perf (issue 11): set twice per receipt; straight into the GaugeTable, no child lookup
        self.metrics.outbox_depth.set(len(a.queue) + a.in_flight + len(a.retry_timers), a.name)

    def waiting_in_store(self, counts: dict[str, int]) -> None:
        """A shared store's count per account: what waits in it, held by a process or not."""
        for account, n in counts.items():
            self.metrics.outbox_depth.set(n, account)

    # -- age limit ----------------------------------------------------------------------------

    def _sweep_later(self) -> None:
        if self._sweeper is None or not self._sweeper.active():
            self._sweeper = self.clock.callLater(min(60.0, self.config.max_age), self.sweep)

    def sweep(self) -> None:
        """Drop queued records older than max_age (they wait for a receiver that never came)."""
        limit = self.clock.seconds() - self.config.max_age
        for a in self._accounts.values():
            keep: deque[tuple[OutboxRecord, int]] = deque()
            for item in a.queue:
                if item[0].created_at < limit:
                    self._drop(item[0], "expired")
                else:
                    keep.append(item)
            a.queue = keep
            self._gauge(a)
        self._sweeper = None
        self._sweep_later()

    def stop(self) -> None:
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        for a in self._accounts.values():
            for t in a.retry_timers.values():
                if t.active():
                    t.cancel()


_RESULT_CODES = {"delivered": RECEIPT_DELIVERED, "refused": RECEIPT_REFUSED}


def _log_failure(record: OutboxRecord) -> Callable[[BaseException | None], None]:
    def done(error: BaseException | None) -> None:
        if error is not None:
            # The receipt went out; failing to forget it means it may go out once more after a
            # restart. Log it: an operator sees why an ESME got a duplicate.
            event(log, "outbox_remove_failed", logging.ERROR, message_id=record.message_id, error=repr(error))

    return done
