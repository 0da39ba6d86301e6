"""One SMPP session over TCP: framing, the state table, timers, windows — and nothing else.

Bytes become PDUs in smpp/ (codec, Framer); what a PDU may do in the current state comes from
smpp/session.py's table; what a submit means is the gateway's business. This class only
frames, asks, answers and keeps time.

Timers use one delayed call per session, set to the earliest deadline among: the bind
deadline (session_init_timeout), our enquire_link after enquire_link_interval of silence, the
inactivity limit, and the response timer of our oldest outstanding request. Resetting a timer
per PDU would cost a cancel and a new call for every message.
"""

from __future__ import annotations

import logging
import time

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from smppgw.config import Account, ServerConfig
from smppgw.gateway.core import Gateway
from smppgw.gateway.outbox import LOST, TIMEOUT, Answer
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.server.guard import BindGuard
from smppgw.server.pdus import data_sm_resp, deliver_sm_bytes, deliver_sms_for, fits_one, label_of, resp_with
from smppgw.server.sessions import Sessions
from smppgw.server.throttle import Throttles
from smppgw.smpp.codec import (
    HEADER,
    FrameError,
    Framer,
    PduError,
    decode,
    encode,
    encode_header,
    encode_message_id_resp,
    error_response,
)
from smppgw.smpp.constants import RESP, CommandId, Status, Tag
from smppgw.smpp.pdu import EnquireLink, GenericNack, Pdu, Unbind, response_for
from smppgw.smpp.session import BIND_STATE, State, check, receives_deliveries
from smppgw.store.base import Bucket, OutboxRecord

log = logging.getLogger("smppgw.session")

SYSTEM_ID = "smppgw"
_RECEIVING = (State.BOUND_RX, State.BOUND_TRX)
_BIND_NAMES = {State.BOUND_TX: "transmitter", State.BOUND_RX: "receiver", State.BOUND_TRX: "transceiver"}
# Requests answered only when the gateway has done its part: they count against the window.
_ASYNC = frozenset(
    {
        CommandId.SUBMIT_SM,
        CommandId.SUBMIT_MULTI,
        CommandId.DATA_SM,
        CommandId.QUERY_SM,
        CommandId.CANCEL_SM,
        CommandId.REPLACE_SM,
    }
)
# Requests that carry a message: they take a token of the account's throughput.
_MESSAGES = frozenset({CommandId.SUBMIT_SM, CommandId.SUBMIT_MULTI, CommandId.DATA_SM})
# plain ints for the per-message paths (an IntEnum member costs a class lookup each time)
_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_ALERT_NOTIFICATION = int(CommandId.ALERT_NOTIFICATION)
_UNBIND = int(CommandId.UNBIND)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
# the pdus metric labels of the four PDUs every message is, resolved once
_IN_SUBMIT_SM = ("in", *label_of(_SUBMIT_SM, 0))
_OUT_SUBMIT_SM_RESP = ("out", *label_of(_SUBMIT_SM_RESP, 0))
_OUT_DELIVER_SM = ("out", *label_of(_DELIVER_SM, 0))
_IN_DELIVER_SM_RESP = ("in", *label_of(_DELIVER_SM_RESP, 0))


class SmppSession(Protocol):
    def __init__(
        self,
        gateway: Gateway,
        config: ServerConfig,
        metrics: Metrics,
        clock: IReactorTime,
        *,
        sessions: Sessions | None = None,
        throttles: Throttles | None = None,
        guard: BindGuard | None = None,
    ) -> None:
        """`sessions`: the listener's open sessions, which this one joins while connected (and
        tells when it binds); `throttles`: the per-account buckets shared by the account's
        sessions (a session made without them, as in unit tests, keeps buckets of its own);
        `guard`: the listener's count of failed binds per source address (None: binds are not
        slowed)."""
        self.gateway, self.config, self.metrics, self.clock = gateway, config, metrics, clock
        self._sessions = sessions
        self._guard = guard
        self._throttles = throttles if throttles is not None else Throttles()
        self.framer = Framer(config.max_pdu_length)
        self.state = State.OPEN
        self.account: str = ""
        self._account: Account | None = None
        self.interface_version = 0x34
        self.peer = ""
        self.peer_host = ""  # the source address alone (flood caps, bind guard)
        self._seq = 0
        self._pending: dict[int, tuple[float, int, Answer | None]] = {}  # seq -> (sent at, command, answer)
        self._deliveries = 0  # deliver_sm among _pending
        self._inflight = 0  # ESME requests waiting for the gateway's answer (the window)
        self._bucket: Bucket | None = None  # the account's throughput, shared by its sessions
        self._mo_ref = 0  # reference of our last long deliver_sm
        self._last_rx = 0.0
        self._opened = 0.0
        self._timer: IDelayedCall | None = None
        self._timer_at = 0.0
        self._closing = False
        self._unbind_sent = False
        self._binding = False  # a bind waits for the store's count of the account's binds
        self._member = f"{id(self):x}"  # this session's name in the store's bind count
        # plain counters for the admin live view, which samples them (no timer per PDU)
        self.submits = 0  # submit_sm taken in (past window and throttle)
        self.deliveries = 0  # deliver_sm records sent (receipts and MO)
        self.bound_at = 0.0

    # -- connection ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer_host = str(getattr(peer, "host", "?"))
        self.peer = f"{self.peer_host}:{getattr(peer, 'port', '?')}"
        self._opened = self._last_rx = self.clock.seconds()
        if self._sessions is not None:
            self._sessions.add(self, self.peer_host)
        self._arm()
        event(log, "connected", peer=self.peer)

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:  # noqa: B008
        was = self.state
        self.state = State.CLOSED
        if self._sessions is not None:
            self._sessions.discard(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        pending, self._pending = self._pending, {}
        self._deliveries = 0
        if was in _BIND_NAMES:
            self.gateway.session_gone(self)
            self.gateway.release_bind(self.account, self._member)
            self.metrics.child(self.metrics.bound_sessions, self.account, _BIND_NAMES[was]).dec()
        for _, _, answer in pending.values():
            if answer is not None:
                answer(LOST)
        event(log, "disconnected", peer=self.peer, account=self.account or "-")

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except FrameError as e:
            self.metrics.child(self.metrics.bad_pdus, "command_length").inc()
            event(log, "bad_command_length", logging.WARNING, peer=self.peer, command_length=e.command_length)
            self._send(GenericNack(sequence_number=e.sequence_number, command_status=Status.ESME_RINVCMDLEN))
            self._close()
            return
        if not frames:
            return
        self._last_rx = self.clock.seconds()
        for frame in frames:
            if self.state is State.CLOSED:
                return
            # deliver_sm_resp, one per receipt, is answered from its header alone: skip building
            # the PDU when decode would accept it (an empty body, an error status, or a message_id
            # with its NUL in the first 65 octets; trailing octets are ignored like decode does)
            _, cid, status, seq = HEADER.unpack_from(frame)
            if cid == _DELIVER_SM_RESP and (len(frame) == 16 or status or frame.find(b"\0", 16, 81) >= 0):
                labels = self._labels("in", cid, status) if status else _IN_DELIVER_SM_RESP
                counts = self.metrics.pdus.counts
                counts[labels] = counts.get(labels, 0) + 1
                self._on_response(seq, status)
                continue
            try:
                pdu = decode(frame)
            except PduError as e:
                self._count("in", e.command_id, Status.ESME_ROK)
                self.metrics.child(self.metrics.bad_pdus, label_of(e.command_id, e.command_status)[1]).inc()
                resp = error_response(e)
                if resp is not None:
                    self._send(resp)
                continue
            self._handle(pdu)

    # -- incoming PDUs ------------------------------------------------------------------------

    def _handle(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        status = pdu.command_status
        labels = _IN_SUBMIT_SM if cid == _SUBMIT_SM and not status else self._labels("in", cid, status)
        counts = self.metrics.pdus.counts
        counts[labels] = counts.get(labels, 0) + 1
        if cid & RESP:
            self._on_response(pdu.sequence_number, pdu.command_status)
            return
        if cid == _ALERT_NOTIFICATION:
            self.metrics.child(self.metrics.bad_pdus, "unexpected_alert_notification").inc()
            return  # never answered (smpp34.md §1.1)
        refusal = check(self.state, cid)
        if refusal:
            resp = response_for(pdu, refusal)
            if resp is not None:
                self._send(resp)
            return
        if cid in _ASYNC:
            self._on_request(pdu)
        elif cid == CommandId.ENQUIRE_LINK:
            self._send(response_for(pdu))
        elif cid in BIND_STATE:
            self._on_bind(pdu)
        elif cid == CommandId.UNBIND:
            self._send(response_for(pdu))
            self._unbound("esme")
            self._close()
        else:
            self._send(response_for(pdu, Status.ESME_RINVCMDID))

    def _on_bind(self, pdu: Pdu) -> None:
        if self._binding:
            self._send(response_for(pdu, Status.ESME_RALYBND))  # the first bind is still being checked
            return
        system_id: str = pdu.system_id  # type: ignore[attr-defined]
        if self._guard is not None and self._guard.locked(self.peer_host, self.clock.seconds()):
            # password guessing from this address: refused unread until its lockout ends
            self.metrics.child(self.metrics.bind_guard, "refused_locked").inc()
            self._send(response_for(pdu, Status.ESME_RBINDFAIL))
            return
        self._binding = True
        self.gateway.authenticate(
            system_id,
            pdu.password,  # type: ignore[attr-defined]
            self._member,
            lambda result: self._bind_checked(pdu, system_id, result),
        )

    def _bind_checked(self, pdu: Pdu, system_id: str, result: Account | int) -> None:
        self._binding = False
        if self.state is State.CLOSED:
            if not isinstance(result, int):
                self.gateway.release_bind(system_id, self._member)  # gone while the store counted it
            return
        if isinstance(result, int):
            self._bind_refused(pdu, system_id, result)
            return
        if self._guard is not None:
            self._guard.succeeded(self.peer_host)
        if self._sessions is not None:
            self._sessions.bound(self)
        self.interface_version = pdu.interface_version  # type: ignore[attr-defined]
        tlvs = ((Tag.SC_INTERFACE_VERSION, b"\x34"),) if self.interface_version >= 0x34 else ()
        self.state = BIND_STATE[pdu.command_id]
        self.account, self._account = system_id, result
        self.bound_at = self.clock.seconds()
        self._bucket = self._throttles.bucket(result, self.clock.seconds())
        self._send(response_for(pdu, 0, system_id=SYSTEM_ID, tlvs=tlvs))
        self.metrics.child(self.metrics.bound_sessions, system_id, _BIND_NAMES[self.state]).inc()
        event(
            log,
            "bound",
            peer=self.peer,
            account=system_id,
            bind=_BIND_NAMES[self.state],
            interface_version=hex(self.interface_version),
        )
        self.gateway.session_bound(self, receives_deliveries(self.state))

    def _bind_refused(self, pdu: Pdu, system_id: str, status: int) -> None:
        event(
            log,
            "bind_refused",
            logging.WARNING,
            peer=self.peer,
            system_id=system_id,
            status=Status(status).name,
        )
        delay = 0.0
        if self._guard is not None and status in (Status.ESME_RINVPASWD, Status.ESME_RINVSYSID):
            delay, locked = self._guard.failed(self.peer_host, self.clock.seconds())
            if locked:
                self.metrics.child(self.metrics.bind_guard, "locked_out").inc()
                event(
                    log,
                    "bind_locked_out",
                    logging.WARNING,
                    peer=self.peer_host,
                    system_id=system_id,
                    failures=self._guard.lockout_after,
                    seconds=self._guard.lockout_for,
                )
            elif delay > 0:
                self.metrics.child(self.metrics.bind_guard, "delayed").inc()
        resp = response_for(pdu, status)
        if delay <= 0:
            self._send(resp)
            return
        self._binding = True  # a bind meanwhile gets ESME_RALYBND, as while one is checked

        def answer() -> None:
            self._binding = False
            if self.state is not State.CLOSED:
                self._send(resp)

        self.clock.callLater(delay, answer)

    def _on_request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if self._inflight >= self.config.window:
            self._send(response_for(pdu, Status.ESME_RMSGQFUL))
            return
        if cid in _MESSAGES and self._bucket is not None and not self._bucket.take(self.clock.seconds()):
            self.metrics.child(self.metrics.bad_pdus, "throttled").inc()
            self._send(response_for(pdu, Status.ESME_RTHROTTLED))
            return
        self._inflight += 1
        account, version = self._account, self.interface_version
        assert account is not None  # the state table admits these only when bound
        if cid == _SUBMIT_SM:
            self.submits += 1
            t0 = time.perf_counter()
            seq = pdu.sequence_number

            def reply(status: int, detail: str) -> None:
                self._inflight -= 1
                if self.state is State.CLOSED:
                    return  # stored all the same; the ESME will learn its fate from the receipt
                # the bytes of response_for(pdu, status, message_id=detail), without the PDU
                if status == 0:
                    self._out(encode_message_id_resp(_SUBMIT_SM_RESP, seq, detail), _OUT_SUBMIT_SM_RESP)
                else:
                    self._out(
                        encode_header(_SUBMIT_SM_RESP, seq, status),
                        self._labels("out", _SUBMIT_SM_RESP, status),
                    )
                self.metrics.submit_latency.observe(time.perf_counter() - t0)

            self.gateway.submit(account, pdu, version, reply)  # type: ignore[arg-type]
            return
        if cid == CommandId.DATA_SM:

            def data_reply(status: int, detail: str) -> None:
                self._inflight -= 1
                if self.state is not State.CLOSED:
                    self._send(data_sm_resp(pdu, status, detail, version))

            self.gateway.data_sm(account, pdu, version, data_reply)  # type: ignore[arg-type]
            return

        def answer(status: int, fields: dict[str, object]) -> None:
            self._inflight -= 1
            if self.state is not State.CLOSED:
                self._send(resp_with(pdu, status, fields))

        if cid == CommandId.SUBMIT_MULTI:
            self.gateway.submit_multi(account, pdu, version, answer)  # type: ignore[arg-type]
        elif cid == CommandId.QUERY_SM:
            self.gateway.query(account, pdu, version, answer)  # type: ignore[arg-type]
        elif cid == CommandId.CANCEL_SM:
            self.gateway.cancel(account, pdu, answer)  # type: ignore[arg-type]
        else:
            self.gateway.replace(account, pdu, version, answer)  # type: ignore[arg-type]

    def _on_response(self, sequence_number: int, command_status: int) -> None:
        entry = self._pending.pop(sequence_number, None)
        if entry is None:
            self.metrics.child(self.metrics.bad_pdus, "unexpected_response").inc()
            return
        _, command, answer = entry
        if command == _DELIVER_SM:
            self._deliveries -= 1
        elif command == _UNBIND:
            self._close()
        if answer is not None:
            answer(command_status)
        if command == _DELIVER_SM and self.state is not State.CLOSED:
            self.gateway.outbox.window_open(self)

    # -- outgoing requests --------------------------------------------------------------------

    def next_sequence(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1  # 1..0x7FFFFFFF, never 0
        return self._seq

    def _request(self, pdu: Pdu, answer: Answer | None) -> None:
        self._pending[pdu.sequence_number] = (self.clock.seconds(), pdu.command_id, answer)
        self._send(pdu)
        if len(self._pending) == 1:
            self._arm()

    def delivery_capacity(self) -> int:
        if self.state not in _RECEIVING or self._closing:
            return 0
        return self.config.window - self._deliveries

    def send_delivery(self, record: OutboxRecord, answer: Answer) -> None:
        account = self._account
        mode = account.long_mo if account is not None else "udh"
        enroute = account.intermediate_esm_class if account is not None else 0x04
        self.deliveries += 1
        if fits_one(record):  # every receipt: straight to bytes, no DeliverSm on the way
            seq = self.next_sequence()
            data = deliver_sm_bytes(record, seq, self.interface_version, enroute)
            self._deliveries += 1
            self._pending[seq] = (self.clock.seconds(), _DELIVER_SM, answer)
            self._out(data, _OUT_DELIVER_SM)
            if len(self._pending) == 1:
                self._arm()
            return
        pdus = deliver_sms_for(
            record, self.next_sequence, self.interface_version, mode, self._mo_ref + 1, enroute
        )
        if len(pdus) > 1:
            self._mo_ref = (self._mo_ref + 1) & 0xFFFF
            answer = _all_of(len(pdus), answer)
        for pdu in pdus:
            self._deliveries += 1
            self._request(pdu, answer)

    def unbind(self) -> None:
        """Server-initiated unbind: wait response_timeout for unbind_resp, then close anyway."""
        if self.state in _BIND_NAMES and not self._unbind_sent:
            self._unbind_sent = True
            self._closing = True
            self._request(Unbind(sequence_number=self.next_sequence()), None)
        elif self.state is not State.CLOSED:
            self._close()

    # -- the admin view and live config changes ---------------------------------------------

    @property
    def bind_name(self) -> str | None:
        """The bind type (transmitter, receiver, transceiver) while bound, else None."""
        return _BIND_NAMES.get(self.state)

    def window_in_use(self) -> tuple[int, int]:
        """(ESME requests waiting for our answer, our requests waiting for the ESME's)."""
        return self._inflight, len(self._pending)

    def account_changed(self, account: Account) -> None:
        """A config reload changed this session's account: the session stays bound and takes
        the new settings (throughput, long_mo, …); a new password matters at the next bind."""
        self._account = account
        self._bucket = self._throttles.bucket(account, self.clock.seconds())

    # -- timers -------------------------------------------------------------------------------

    def _deadline(self) -> float:
        c = self.config
        if self.state is State.OPEN:
            return self._opened + c.session_init_timeout
        oldest = min((sent for sent, _, _ in self._pending.values()), default=None)
        if self._unbind_sent:
            return oldest + c.response_timeout if oldest is not None else self.clock.seconds()
        at = self._last_rx + c.inactivity_timeout
        if not self._closing and all(cmd != CommandId.ENQUIRE_LINK for _, cmd, _ in self._pending.values()):
            at = min(at, self._last_rx + c.enquire_link_interval)
        if oldest is not None:
            at = min(at, oldest + c.response_timeout)
        return at

    def _arm(self) -> None:
        if self.state is State.CLOSED:
            return
        at = self._deadline()
        if self._timer is not None and self._timer.active():
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.clock.callLater(max(0.0, at - self.clock.seconds()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now, c = self.clock.seconds(), self.config
        if self.state is State.OPEN and now >= self._opened + c.session_init_timeout:
            event(log, "bind_timeout", peer=self.peer)
            self._close()
            return
        link_dead = False
        for seq in [s for s, (sent, _, _) in self._pending.items() if now >= sent + c.response_timeout]:
            _, command, answer = self._pending.pop(seq)
            if command == CommandId.DELIVER_SM:
                self._deliveries -= 1
            elif command in (CommandId.ENQUIRE_LINK, CommandId.UNBIND):
                link_dead = True
            if answer is not None:
                answer(TIMEOUT)
        if link_dead:
            # Our enquire_link or unbind went unanswered: unbind, and close when that is not
            # answered either (smpp34.md §1.11, §2.7).
            event(log, "no_response", logging.WARNING, peer=self.peer, account=self.account)
            if self._unbind_sent:
                self._close()
                return
            self.unbind()
        idle = now - self._last_rx
        if idle >= c.inactivity_timeout and not self._unbind_sent:
            event(log, "inactive", peer=self.peer, account=self.account, idle=round(idle, 1))
            self.unbind()
        elif (
            self.state in _BIND_NAMES
            and idle >= c.enquire_link_interval
            and not self._closing
            and all(cmd != CommandId.ENQUIRE_LINK for _, cmd, _ in self._pending.values())
        ):
            self._request(EnquireLink(sequence_number=self.next_sequence()), None)
        self._arm()

    # -- output -------------------------------------------------------------------------------

    def _send(self, pdu: Pdu | None) -> None:
        if pdu is None or self.state is State.CLOSED:
            return
        self._out(encode(pdu), self._labels("out", pdu.command_id, pdu.command_status))

    def _out(self, data: bytes, labels: tuple[str, ...]) -> None:
        """Write a PDU's bytes and count it under its metric labels (`_labels`, or one of the
        per-message PDUs' labels resolved at import)."""
        if self.state is State.CLOSED:
            return
        self.transport.write(data)  # type: ignore[union-attr]
        counts = self.metrics.pdus.counts
        counts[labels] = counts.get(labels, 0) + 1

    def _count(self, direction: str, command_id: int, status: int) -> None:
        labels = self._labels(direction, command_id, status)
        counts = self.metrics.pdus.counts
        counts[labels] = counts.get(labels, 0) + 1

    def _labels(self, direction: str, command_id: int, status: int) -> tuple[str, ...]:
        """The pdus metric labels of a PDU, resolved once per (direction, command, status)."""
        labels = self.metrics.pdu_labels.get((direction, command_id, status))
        if labels is None:
            labels = self.metrics.pdu_labels[(direction, command_id, status)] = (
                direction,
                *label_of(command_id, status),
            )
        return labels

    def _unbound(self, by: str) -> None:
        if self.state in _BIND_NAMES:
            self.gateway.session_gone(self)
            self.gateway.release_bind(self.account, self._member)
            self.metrics.child(self.metrics.bound_sessions, self.account, _BIND_NAMES[self.state]).dec()
            event(log, "unbound", peer=self.peer, account=self.account, by=by)
        self.state = State.UNBOUND

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


def _all_of(parts: int, answer: Answer) -> Answer:
    """One answer for a message sent in parts: OK when every part was, else the first refusal."""
    state = [parts, 0]

    def part_answer(status: int) -> None:
        state[0] -= 1
        if status and not state[1]:
            state[1] = status
        if not state[0]:
            answer(state[1])

    return part_answer
