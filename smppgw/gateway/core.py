"""The message lifecycle: accept → validate → persist → route → dispatch → track → notify.

The gateway owns every message's state. `submit` answers only after the message is committed
(group commit in the store); a state change and the receipt it causes are committed in one
write, and the receipt enters the outbox only after that commit. A message reaches one final
state once: later or repeated reports are counted and ignored.

Sessions reach the gateway through `authenticate`, `session_bound`/`session_gone` and
`submit`; the gateway reaches sessions only through the outbox's DeliverySession interface.

The store hands the gateway what it commits for sessions (`deliver`: every receipt and MO goes
through the store, so with a shared store it reaches whichever process holds the account's
receiver), reports another process received for a message this one owns (`forwarded`), the
unfinished messages of a process that died (`claimed`), and the news that this process was
itself taken for dead (`fenced`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from twisted.internet.interfaces import IReactorTime

from smppgw.config import Account, Config
from smppgw.gateway.chores import Chores
from smppgw.gateway.dispatch import Dispatcher
from smppgw.gateway.held import Held
from smppgw.gateway.ids import IdIssuer, IdsExhausted
from smppgw.gateway.inbound import InboundDesk
from smppgw.gateway.operations import Answer, Operations
from smppgw.gateway.outbox import DeliverySession, Outbox
from smppgw.gateway.passwords import PasswordChecker
from smppgw.gateway.prices import PriceBook
from smppgw.gateway.reassembly import Reassembler
from smppgw.gateway.receipts import build_receipt, final_receipt, wants_receipt
from smppgw.gateway.retention import Retention
from smppgw.gateway.router import NoRoute, Router
from smppgw.gateway.submit import Prepared, RefusalLog, Refused, Reply, prepare
from smppgw.gateway.tracker import Tracker
from smppgw.gateway.trail import timeline
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import (
    ENROUTE,
    EXPIRED,
    REJECTED,
    UNDELIVERABLE,
    UNKNOWN,
    OutboundSms,
    Provider,
    SendResult,
    StatusReport,
)
from smppgw.smpp.constants import Status
from smppgw.smpp.pdu import CancelSm, DataSm, QuerySm, ReplaceSm, SubmitMulti, SubmitSm
from smppgw.smpp.receipt import STAT_BY_STATE
from smppgw.smpp.text import is_gsm
from smppgw.store.base import (
    QUEUED,
    RECEIPT_OWED,
    AddEvent,
    AddOutbox,
    InsertMessage,
    MessageRecord,
    Op,
    OutboxRecord,
    Store,
    TrailEvent,
    UpdateMessage,
)

log = logging.getLogger("smppgw.gateway")

EARLY_REPORTS_MAX = 10_000
EARLY_REPORT_TTL = 120.0


class Gateway:
    def __init__(
        self,
        config: Config,
        store: Store,
        providers: dict[str, Provider],
        metrics: Metrics,
        clock: IReactorTime,
    ) -> None:
        self.config, self.store, self.providers = config, store, providers
        self.metrics, self.clock = metrics, clock
        self.accounts = config.accounts
        self.passwords = PasswordChecker()
        self.prices = PriceBook(config.providers)
        self.router = Router(config.routes, self.prices)
        self.outbox = Outbox(store, config.receipts, clock, metrics)
        self.dispatcher = Dispatcher(
            providers,
            config.dispatch,
            clock,
            metrics,
            self._on_sent,
            self._outbound,
            self._next_provider,
            retries=lambda record: record.id not in self._held_acks,
            note=self.note,
            store=store,
        )
        self.inbound = InboundDesk(
            config.inbound, config.accounts, store, self.outbox, lambda: self.ids, metrics, clock
        )
        self.on_inbound = self.inbound.receive
        self.chores = Chores(providers, config.providers, clock, metrics, self.on_inbound, self.prices)
        self.tracker = Tracker(
            providers,
            config.providers,
            clock,
            metrics,
            config.dispatch.status_horizon,
            self.live_message,
            self._live_list,
            self.on_report,
            self._on_horizon,
        )
        st = config.store
        self.retention = Retention(store, clock, st.keep_final, st.purge_batch, st.purge_every)
        self.ids = IdIssuer(1)
        self.live: dict[str, MessageRecord] = {}  # unfinished messages by our id
        self._maybe_sent: set[str] = set()  # resumed or taken over before any send of ours
        self.by_provider_id: dict[tuple[str, str], MessageRecord] = {}
        self._tried: dict[str, set[str]] = {}  # providers a message failed over from
        self._held_acks: dict[str, Reply] = {}  # ack = "provider": replies waiting for the provider
        # reports that beat the send answer they belong to: (provider, provider id) -> (when, report)
        self._early: dict[tuple[str, str], tuple[float, StatusReport]] = {}
        self.sessions: dict[str, list[object]] = {}
        self.started = False
        self.held = Held(clock, self._release)
        self.parts = Reassembler(
            clock=clock,
            store=store,
            live=self.live,
            account_of=lambda name: self.accounts.get(name),
            high_id=lambda: self.ids.high,
            new_record=self.new_record,
            accept=self.accept,
            finalize=self._finalize,
            write=self._write,
        )
        self.ops = Operations(
            live=self.live,
            store=store,
            clock=clock,
            providers=providers,
            held=self.held,
            finalize=self._finalize,
            dispatch=self._dispatch,
            submit=self.submit,
            take_back=self.take_back,
        )
        self.refusals = RefusalLog()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        snap = self.store.open()
        self.store.attach(self)
        reserve = self.store.reserve_ids if snap.id_limit is not None else None
        self.ids = IdIssuer(snap.next_id, snap.id_limit, reserve)
        self.outbox.load(snap.outbox + [self.receipt_for(r) for r in snap.receipts_owed])
        for p in self.providers.values():
            if hasattr(p, "report_sink"):
                p.report_sink = lambda report, name=p.name: self.on_report(name, report)  # type: ignore[attr-defined]
        for record in snap.unfinished:
            self._resume(record)
        self.parts.resume()
        self.tracker.start()
        self.chores.start()
        self.retention.start()
        self.started = True
        event(
            log,
            "gateway_started",
            resumed=len(snap.unfinished),
            receipts_waiting=len(snap.outbox),
            next_id=snap.next_id,
        )

    def _resume(self, record: MessageRecord) -> None:
        self.live[record.id] = record
        if record.state == QUEUED:
            self._maybe_sent.add(record.id)  # the process before us may have sent it already
            if record.provider not in self.providers:
                try:
                    record.provider = self.router.route(record.account, record.destination, record.source)[0]
                except NoRoute:
                    self._finalize(record, REJECTED, "000")
                    return
            self._dispatch(record)
        else:
            key = (record.provider, record.provider_id)
            self.by_provider_id[key] = record
            early = self._early.pop(key, None)
            if early is not None:
                self.on_report(record.provider, early[1])
            elif self.tracker.should_poll(record, resumed=True):
                self.tracker.track(record, resumed=True)

    def stop(self) -> None:
        self._stop_operations()
        self.dispatcher.stop()
        self.tracker.stop()
        self.chores.stop()
        self.retention.stop()
        self.outbox.stop()

    def _stop_operations(self) -> None:
        self.held.stop()
        self.parts.stop()

    def healthy(self) -> bool:
        return self.started and self.store.healthy()

    # -- sessions -----------------------------------------------------------------------------

    def authenticate(
        self, system_id: str, password: str, member: str, done: Callable[[Account | int], None]
    ) -> None:
        """Check a bind: the account, its password, and its bind count in every process (the
        store counts `member`, one name per session, until `release_bind`)."""
        account = self.accounts.get(system_id)
        if account is None:
            done(Status.ESME_RINVSYSID)
            return
        if not self.passwords.check(account.password, password):
            done(Status.ESME_RINVPASWD)
            return
        if len(self.sessions.get(system_id, ())) >= account.max_binds:
            done(Status.ESME_RBINDFAIL)
            return

        def counted(ok: bool | None) -> None:
            # at the limit, or the store cannot count (unreachable): refuse, the ESME binds again
            done(account if ok else Status.ESME_RBINDFAIL)

        self.store.bind(system_id, member, account.max_binds, counted)

    def release_bind(self, system_id: str, member: str) -> None:
        self.store.unbind(system_id, member)

    def session_bound(self, session: DeliverySession, receives: bool) -> None:
        self.sessions.setdefault(session.account, []).append(session)
        if receives:
            self.outbox.session_bound(session)

    def session_gone(self, session: DeliverySession) -> None:
        held = self.sessions.get(session.account, [])
        if session in held:
            held.remove(session)
        self.outbox.session_gone(session)

    # -- a message arrives: check, id, store, answer ------------------------------------------

    def submit(
        self,
        account: Account,
        pdu: SubmitSm,
        interface_version: int,
        reply: Reply,
        *,
        ack_when_stored: bool = False,
    ) -> None:
        """Check, store, answer, dispatch one message; a part of a long message goes to the
        reassembler. On refusal `reply` gets the status and the reason as its second argument."""
        now = self.clock.seconds()
        try:
            fields = prepare(pdu, interface_version, now, account.dc0_charset, account.dc1_charset)
            providers = self.router.route(account.system_id, fields.destination, pdu.source_addr)
            if account.strict_senders and self.chores.sender_known(providers[0], pdu.source_addr) is False:
                raise Refused(Status.ESME_RINVSRCADR, "sender not in the provider's list", "unknown_sender")
        except Refused as e:
            self._refused(account, e, reply)
            return
        except NoRoute:
            self._refused(account, Refused(Status.ESME_RINVDSTADR, "no route", "no_route"), reply)
            return
        if fields.segment is not None:
            self.parts.add(account, pdu, fields, providers[0], interface_version, reply)
            return
        if pdu.replace_if_present_flag:
            self.ops.cancel(account, _same_addresses(pdu), lambda status, resp: None)
        try:
            record = self.new_record(account, pdu, fields, providers[0], interface_version)
        except IdsExhausted:
            self._count(account.system_id, providers[0], "store_failed")
            reply(Status.ESME_RSYSERR, "store unavailable")
            return
        self.accept(record, account, reply, hold_ack=account.ack == "provider" and not ack_when_stored)

    def _refused(self, account: Account, refused: Refused, reply: Reply) -> None:
        self._count(account.system_id, "", "refused")
        self.metrics.child(self.metrics.bad_pdus, refused.reason).inc()
        self.refusals.note(account.system_id, refused, self.clock.seconds())
        reply(refused.status, str(refused))

    def new_record(
        self, account: Account, pdu: SubmitSm, fields: Prepared, provider: str, interface_version: int
    ) -> MessageRecord:
        if interface_version <= 0x33:
            message_id = self.ids.issue("hex", 8)  # 3.3 ESMEs keep ids of at most 8 characters
        else:
            message_id = self.ids.issue(account.message_id_format, account.message_id_length)
        return MessageRecord(
            id=message_id,
            account=account.system_id,
            source=pdu.source_addr,
            source_ton=pdu.source_addr_ton,
            source_npi=pdu.source_addr_npi,
            destination=fields.destination,
            dest_ton=pdu.dest_addr_ton,
            dest_npi=pdu.dest_addr_npi,
            text=fields.text,
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            submitted_at=self.clock.seconds(),
            provider=provider,
            user_message_reference=fields.user_message_reference,
            schedule_at=fields.schedule_at,
            valid_until=fields.valid_until,
        )

    def accept(
        self,
        record: MessageRecord,
        account: Account,
        reply: Reply,
        *,
        ops: Sequence[Op] = (),
        hold_ack: bool = False,
        done: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        """Store a new message (with `ops` in the same commit), answer, and send it on its way."""

        def committed(error: BaseException | None) -> None:
            if done is not None:
                done(error)
            if error is not None:
                self._count(account.system_id, record.provider, "store_failed")
                reply(Status.ESME_RSYSERR, "store failed")
                return
            self._count(account.system_id, record.provider, "accepted")
            self.live[record.id] = record
            if hold_ack:
                self._held_acks[record.id] = reply  # answered from _on_sent
            else:
                reply(Status.ESME_ROK, record.id)
            self._dispatch(record)

        self.store.write([InsertMessage(record), *ops], committed, high_id=self.ids.high)

    # -- on its way to a provider -------------------------------------------------------------

    def _dispatch(self, record: MessageRecord) -> None:
        now = self.clock.seconds()
        if record.valid_until is not None and now >= record.valid_until:
            self._finalize(record, EXPIRED, "000")  # before any provider took it
            return
        if record.schedule_at is not None and record.schedule_at > now and self._holds_here(record):
            self.held.hold(record)
            return
        self.dispatcher.enqueue(record)

    def _holds_here(self, record: MessageRecord) -> bool:
        """The gateway holds a scheduled message itself, unless its provider can both hold it
        and delete it again (so cancel_sm still works): then the time goes to the provider."""
        caps = getattr(self.providers.get(record.provider), "capabilities", None)
        return not (caps is not None and caps.schedule and caps.cancel)

    def _release(self, record: MessageRecord) -> None:
        if self.live.get(record.id) is record and record.state == QUEUED:
            self._dispatch(record)

    def _outbound(self, record: MessageRecord) -> OutboundSms:
        dc = record.data_coding
        maybe_sent = bool(self._maybe_sent) and record.id in self._maybe_sent
        return OutboundSms(
            message_id=record.id,
            source=record.source,
            destination=record.destination,
            text=record.text,
            unicode=dc == 8 or not is_gsm(record.text),
            flash=(dc & 0xF3) == 0xF0 or (dc & 0xF3) == 0x10,
            schedule_at=_dt(record.schedule_at),
            valid_until=_dt(record.valid_until),
            maybe_sent=maybe_sent,
        )

    def _next_provider(self, record: MessageRecord) -> str | None:
        """The first provider of the message's route (in config order) it has not tried yet."""
        try:
            chain = self.router.route(record.account, record.destination, record.source)
        except NoRoute:
            return None
        tried = self._tried.setdefault(record.id, {record.provider})
        tried.add(record.provider)
        for name in sorted(chain, key=self.router.order(record.account, record.destination, record.source)):
            if name not in tried:
                tried.add(name)
                return name
        return None

    def take_back(self, record: MessageRecord) -> bool:
        """Take a message the gateway still holds out of its way to a provider."""
        if record.state != QUEUED or self.parts.is_part(record) or record.id in self._held_acks:
            return False
        if self.held.take(record.id):
            return True
        lane = self.dispatcher.lanes.get(record.provider)
        if lane is not None and record in lane.queue:
            lane.queue.remove(record)  # waiting for a request slot or a rate token: not sent yet
            return True
        return False  # in a request right now, or between retries

    # -- provider results and reports ---------------------------------------------------------

    def _on_sent(self, record: MessageRecord, result: SendResult) -> None:
        held = self._held_acks.pop(record.id, None)
        if self._maybe_sent:
            self._maybe_sent.discard(record.id)
        if record.id not in self.live:
            return
        error = result.error
        if error is not None:
            event(
                log,
                "message_refused" if held else "message_failed",
                account=record.account,
                message_id=record.id,
                provider=record.provider,
                detail=error.detail,
                status=hex(error.command_status),
            )
            self.note(
                record.id,
                "send_failed",
                provider=record.provider,
                status=hex(error.command_status),
                detail=error.detail,
            )
            if held is not None:
                # ack = "provider": the ESME learns the provider's verdict in the submit_sm_resp,
                # so no receipt follows for a message it was told failed.
                held(error.command_status, "")
                self._finalize(record, REJECTED, error.err, receipt=False)
            else:
                self._finalize(record, UNDELIVERABLE if error.retryable else REJECTED, error.err)
            return
        if held is not None:
            held(Status.ESME_ROK, record.id)
        record.provider_id = result.provider_id or ""
        record.sent_at = self.clock.seconds()
        if result.state >= 2:
            # the send answer is already final (e.g. a duplicate the provider had accepted before,
            # with nothing left to poll)
            self._finalize(record, result.state, "000")
            return
        key = (record.provider, record.provider_id)
        if record.provider_id:
            self.by_provider_id[key] = record
        record.state = ENROUTE
        ops: list[Op] = [UpdateMessage(record)]
        if result.state == ENROUTE and wants_receipt(record.registered_delivery, ENROUTE):
            ops.append(AddOutbox(build_receipt(record, ENROUTE, self.clock.seconds())))
        self._count(record.account, record.provider, "ENROUTE")
        self._write(ops)
        early = self._early.pop(key, None)
        if early is not None:
            self.on_report(record.provider, early[1])
        elif self.tracker.should_poll(record, resumed=False):
            self.tracker.track(record)

    def on_report(self, provider: str, report: StatusReport, forwarded: bool = False) -> None:
        """A status from a provider (push, poll or webhook), for one of our messages."""
        key = (provider, report.provider_id)
        record = self.by_provider_id.get(key)
        if record is None and report.message_id:
            record = self.live.get(report.message_id)
            if record is not None and record.provider != provider:
                record = None
        if record is None or record.state >= 2:
            if record is None:
                self._remember_early(key, report)  # a webhook may beat the send answer it belongs to
                if not forwarded:
                    self.store.route_report(provider, report)  # another process may own it
            self.metrics.child(self.metrics.provider_requests, provider, "report", "ignored").inc()
            return
        if report.final:
            done = report.done_at.timestamp() if report.done_at else None
            self._finalize(record, report.state, report.err, done)
        elif report.state != record.state and report.state != 0:
            record.state = report.state
            now = self.clock.seconds()
            status = TrailEvent(now, "status", {"state": STAT_BY_STATE.get(report.state, report.state)})
            ops: list[Op] = [UpdateMessage(record), AddEvent(record.id, status)]
            if wants_receipt(record.registered_delivery, report.state):
                ops.append(AddOutbox(build_receipt(record, report.state, now)))
            self._write(ops)

    def _remember_early(self, key: tuple[str, str], report: StatusReport) -> None:
        now = self.clock.seconds()
        if len(self._early) >= EARLY_REPORTS_MAX:
            self._early = {k: v for k, v in self._early.items() if now - v[0] < EARLY_REPORT_TTL}
        if len(self._early) < EARLY_REPORTS_MAX:
            self._early[key] = (now, report)

    def _on_horizon(self, record: MessageRecord) -> None:
        event(log, "status_horizon", account=record.account, message_id=record.id, provider=record.provider)
        self._finalize(record, UNKNOWN, "000")

    # -- the final state, and the receipt in the same commit ----------------------------------

    def _finalize(
        self, record: MessageRecord, state: int, err: str, done_at: float | None = None, receipt: bool = True
    ) -> None:
        """The one place a message reaches its final state."""
        if record.state >= 2:
            return
        record.state = state
        record.err = (err or "000")[:3].rjust(3, "0")
        record.done_at = done_at if done_at is not None else self.clock.seconds()
        self.live.pop(record.id, None)
        self._tried.pop(record.id, None)
        if record.provider_id:
            self.by_provider_id.pop((record.provider, record.provider_id), None)
        ops: list[Op] = [UpdateMessage(record)]
        if receipt and wants_receipt(record.registered_delivery, state):
            record.receipt = RECEIPT_OWED  # the receipt rides on the row until the ESME answers it
            ops.append(AddOutbox(build_receipt(record, state, self.clock.seconds(), on_row=True)))
        self._count(record.account, record.provider, STAT_BY_STATE[state])
        self._write(ops)

    def _write(self, ops: list[Op]) -> None:
        """A state change and the receipt it causes, in one commit; the store hands the receipt
        to `deliver` once it is committed."""

        def committed(error: BaseException | None) -> None:
            if error is not None:
                ids = ",".join(sorted({getattr(getattr(op, "record", None), "id", "") for op in ops} - {""}))
                event(
                    log, "state_write_failed", logging.ERROR, message_id=ids, ops=len(ops), error=repr(error)
                )

        self.store.write(ops, committed)
        self.parts.follow(ops)

    def note(self, message_id: str, what: str, **detail: object) -> None:
        """A step of a message's trail that its row does not record (kept as long as the row)."""
        self.store.write(
            [AddEvent(message_id, TrailEvent(self.clock.seconds(), what, detail))],
            partial(_noted, message_id),
        )

    def _count(self, account: str, provider: str, state: str) -> None:
        # perf (issue 11): a CounterTable counts in one dict update; child(...).inc() cost a lookup
        # of the child and a call more, three times per message
        self.metrics.messages.inc(account, provider, state)

    # -- what the store hands over ------------------------------------------------------------

    def deliver(self, record: OutboxRecord) -> None:
        self.outbox.add(record)

    def forwarded(self, provider: str, report: StatusReport) -> None:
        self.on_report(provider, report, forwarded=True)

    def receipt_dropped(self, account: str, message_id: str, state: int, why: str) -> None:
        self.outbox.dropped_in_store(account, message_id, state, why)

    def waiting(self, counts: dict[str, int]) -> None:
        self.outbox.waiting_in_store(counts)

    def receipt_for(self, record: MessageRecord) -> OutboxRecord:
        return final_receipt(record)

    def claimed(self, records: list[MessageRecord]) -> None:
        """Carry on with a dead process's unfinished messages, as after a restart."""
        fresh = [r for r in records if r.id not in self.live]
        for record in fresh:
            self._resume(record)
        self.parts.resume(fresh)
        event(log, "messages_claimed", logging.WARNING, messages=len(fresh))

    def fenced(self) -> None:
        """Another process took this one's messages (it was taken for dead): drop them here so
        that only the new owner sends, tracks and finalizes them."""
        event(log, "fenced", logging.ERROR, messages=len(self.live))
        self.live.clear()
        self.by_provider_id.clear()
        self._tried.clear()
        self._maybe_sent.clear()
        self._early.clear()
        self.dispatcher.forget_all()
        self.tracker.forget_all()
        self.held.forget_all()
        self.parts.forget_all()
        self.outbox.forget_shared()

    # -- queries and the other protocol operations --------------------------------------------

    def trail(self, message_id: str, done: Callable[[MessageRecord | None, list[TrailEvent]], None]) -> None:
        """The stored message and its whole trail (row milestones and events), oldest first."""

        def found(record: MessageRecord | None, events: list[TrailEvent]) -> None:
            done(record, timeline(record, events) if record is not None else [])

        self.store.get_trail(message_id, found)

    def live_message(self, message_id: str) -> MessageRecord | None:
        return self.live.get(message_id)

    def _live_list(self) -> list[MessageRecord]:
        return list(self.live.values())

    def submit_multi(self, account: Account, pdu: SubmitMulti, version: int, answer: Answer) -> None:
        self.ops.submit_multi(account, pdu, version, answer)

    def data_sm(self, account: Account, pdu: DataSm, interface_version: int, reply: Reply) -> None:
        self.ops.data_sm(account, pdu, interface_version, reply)

    def query(self, account: Account, pdu: QuerySm, interface_version: int, answer: Answer) -> None:
        self.ops.query(account, pdu, interface_version, answer)

    def cancel(self, account: Account, pdu: CancelSm, answer: Answer) -> None:
        self.ops.cancel(account, pdu, answer)

    def replace(self, account: Account, pdu: ReplaceSm, interface_version: int, answer: Answer) -> None:
        self.ops.replace(account, pdu, interface_version, answer)


def _same_addresses(pdu: SubmitSm) -> CancelSm:
    """replace_if_present_flag: the held messages from this source to this destination go."""
    return CancelSm(
        pdu.sequence_number,
        0,
        pdu.service_type,
        "",
        pdu.source_addr_ton,
        pdu.source_addr_npi,
        pdu.source_addr,
        pdu.dest_addr_ton,
        pdu.dest_addr_npi,
        pdu.destination_addr,
    )


def _noted(message_id: str, error: BaseException | None) -> None:
    if error is not None:
        event(log, "trail_write_failed", logging.ERROR, message_id=message_id, error=repr(error))


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
