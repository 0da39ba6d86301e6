"""Long messages submitted in parts (UDH with an 8- or 16-bit reference, or sar_* TLVs): every
part is a message of its own (its own id, resp, stored record and receipt as its
registered_delivery asks), and the provider gets one text.

Parts are grouped by (account, source, destination, reference kind, reference) and joined on
their raw bytes before decoding, since clients split ESC pairs and surrogate pairs. They may
come in any order; a part repeated before its group is complete gets the id of the first
copy (once complete, the same reference starts a new message: Kannel numbers every long
message 0). The part that completes a group goes to the provider with the whole text (the
"lead"); the others ("followers") take every later state of the lead, each with its own
receipt. A group still incomplete `reassembly_timeout` seconds after its first part ends:
the parts that came are UNDELIVERABLE.

Storage: a part waiting for the rest is written with state ENROUTE and provider_id "part:" so
that a restart never sends a fragment; a follower's provider_id is "part:<lead id>", which is
how `resume` links them again after a restart. One delayed call serves every group's timeout.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from smppgw.config import Account
from smppgw.gateway.ids import IdsExhausted
from smppgw.gateway.receipts import build_receipt, wants_receipt
from smppgw.gateway.submit import Prepared, Reply, decode_payload
from smppgw.logs import event
from smppgw.providers.base import ENROUTE, REJECTED, UNDELIVERABLE, UNKNOWN
from smppgw.smpp.constants import Status
from smppgw.smpp.pdu import SubmitSm
from smppgw.smpp.text import TextError
from smppgw.store.base import (
    QUEUED,
    AddOutbox,
    InsertMessage,
    MessageRecord,
    Op,
    UpdateMessage,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from smppgw.store.base import Store

log = logging.getLogger("smppgw.reassembly")

WAITING = "part:"  # provider_id of a stored part whose group is not complete
Key = tuple[str, str, str, str, int]


@dataclass(slots=True)
class _Part:
    seq: int
    record: MessageRecord
    payload: bytes
    data_coding: int
    packed: bool = False
    committed: bool = False
    waiting: list[Reply] = field(default_factory=list)  # repeats answered when the first commits


@dataclass(slots=True)
class _Group:
    key: Key
    total: int
    deadline: float
    parts: dict[int, _Part] = field(default_factory=dict)
    done: bool = False  # complete and handed on: its timeout no longer applies


class Reassembler:
    """Joins the parts of long messages before one text goes to a provider.

    The gateway hands over what this needs of it: the clock, the store, its unfinished messages
    (`live`, by id), its accounts by name, the high end of the ids it has issued, and the steps of
    a message's life that a group takes: `new_record` (an id and a row for a part), `accept` (store,
    answer and dispatch the lead), `finalize` (a part's one final state) and `write` (a state
    change with the receipt it causes, in one commit).
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        store: Store,
        live: dict[str, MessageRecord],
        account_of: Callable[[str], Account | None],
        high_id: Callable[[], int],
        new_record: Callable[..., MessageRecord],
        accept: Callable[..., None],
        finalize: Callable[..., None],
        write: Callable[[list[Op]], None],
    ) -> None:
        self.clock, self.store, self.live, self._account_of, self._high_id = (
            clock,
            store,
            live,
            account_of,
            high_id,
        )
        self._new_record, self._accept, self._finalize, self._write = new_record, accept, finalize, write
        self.groups: dict[Key, _Group] = {}
        self.followers: dict[str, list[MessageRecord]] = {}  # lead id -> the other parts
        self._heap: list[tuple[float, int, Key, _Group]] = []
        self._order = itertools.count()
        self._timer: IDelayedCall | None = None
        self._timer_at = float("inf")

    # -- parts in -----------------------------------------------------------------------------

    def add(
        self, account: Account, pdu: SubmitSm, fields: Prepared, provider: str, version: int, reply: Reply
    ) -> None:
        seg = fields.segment
        assert seg is not None
        key = (account.system_id, pdu.source_addr, fields.destination, fields.segment_kind, seg.ref)
        group = self.groups.get(key)
        if group is not None:
            old = group.parts.get(seg.seq)
            same = old is not None and old.payload == fields.payload and old.data_coding == pdu.data_coding
            if group.total != seg.total or (old is not None and not same):
                # The reference came round again for a new message (Kannel always uses 0).
                self._end(group, "reference reused")
                group = None
            elif old is not None:
                self._repeat(old, reply)
                return
        now = self.clock.seconds()
        if group is None:
            group = _Group(key, seg.total, now + account.reassembly_timeout)
            self.groups[key] = group
            self._push(group)
        try:
            record = self._new_record(account, pdu, fields, "", version)
        except IdsExhausted:
            reply(Status.ESME_RSYSERR, "store unavailable")
            return
        part = _Part(seg.seq, record, fields.payload, pdu.data_coding, fields.packed)
        group.parts[seg.seq] = part
        if len(group.parts) < group.total:
            record.provider_id = WAITING
            self._store_part(account, group, part, reply)
            return
        try:
            text = self._join(account, group)
        except TextError as e:
            del group.parts[seg.seq]
            self._end(group, f"joined text does not decode: {e}", REJECTED)
            reply(Status.ESME_RSUBMITFAIL, f"joined parts do not decode: {e}")
            return
        # Complete: forgotten at once, so the same reference and text later is a new message
        # (Kannel numbers every long message 0), not a repeat of this one.
        del self.groups[key]
        group.done = True
        record.text, record.provider = text, provider
        others = [p.record for p in group.parts.values() if p is not part]
        ops: list[Op] = []
        for f in others:
            f.provider_id = WAITING + record.id
            ops.append(UpdateMessage(_with_state(f, max(f.state, ENROUTE))))
        self.followers[record.id] = others

        def done(error: BaseException | None) -> None:
            part.committed = True
            if error is not None:
                for f in self.followers.pop(record.id, ()):
                    f.provider_id = WAITING
                if group.parts.get(part.seq) is part:
                    del group.parts[part.seq]
                group.done = False
                if self.groups.setdefault(key, group) is not group:
                    self._end(group, "store failed")  # a new message took the reference meanwhile
            self._answer_waiting(part, error)

        self._accept(record, account, reply, ops=ops, hold_ack=False, done=done)

    def _join(self, account: Account, group: _Group) -> str:
        parts = [group.parts[i] for i in sorted(group.parts)]
        dc0, dc1 = account.dc0_charset, account.dc1_charset
        first = parts[0]
        if all(p.data_coding == first.data_coding and p.packed == first.packed for p in parts):
            payload = b"".join(p.payload for p in parts)
            return decode_payload(payload, first.data_coding, first.packed, dc0, dc1)
        # Parts in different codings (a client bug): each must decode on its own.
        return "".join(decode_payload(p.payload, p.data_coding, p.packed, dc0, dc1) for p in parts)

    def _store_part(self, account: Account, group: _Group, part: _Part, reply: Reply) -> None:
        record = part.record

        def committed(error: BaseException | None) -> None:
            part.committed = True
            self._answer_waiting(part, error)
            if error is not None:
                if group.parts.get(part.seq) is part:
                    del group.parts[part.seq]
                reply(Status.ESME_RSYSERR, "store failed")
                return
            if record.state < 2:
                self.live[record.id] = record
            reply(Status.ESME_ROK, record.id)

        stored = _with_state(record, ENROUTE)  # on disk never QUEUED: a restart must not send it
        self.store.write([InsertMessage(stored)], committed, high_id=self._high_id())

    def _repeat(self, part: _Part, reply: Reply) -> None:
        if part.committed:
            reply(Status.ESME_ROK, part.record.id)
        else:
            part.waiting.append(reply)

    def _answer_waiting(self, part: _Part, error: BaseException | None) -> None:
        waiting, part.waiting = part.waiting, []
        for reply in waiting:
            reply(Status.ESME_RSYSERR, "store failed") if error else reply(Status.ESME_ROK, part.record.id)

    # -- the lead's states reach its followers ------------------------------------------------

    def follow(self, ops: list[Op]) -> None:
        """Called for every state write: a lead's new state goes to its followers."""
        if not self.followers:
            return  # no long message waiting for its lead: the common case, one check
        for op in ops:
            if type(op) is UpdateMessage and op.record.id in self.followers:
                self._mirror(op.record)

    def _mirror(self, lead: MessageRecord) -> None:
        if lead.state >= 2:
            for f in self.followers.pop(lead.id, ()):
                self._finalize(f, lead.state, lead.err, lead.done_at)
            return
        if lead.state != ENROUTE:
            return
        now = self.clock.seconds()
        for f in self.followers.get(lead.id, ()):
            if f.state == QUEUED:
                f.state = ENROUTE
                ops: list[Op] = [UpdateMessage(f)]
                if wants_receipt(f.registered_delivery, ENROUTE):
                    ops.append(AddOutbox(build_receipt(f, ENROUTE, now)))
                self._write(ops)

    def is_part(self, record: MessageRecord) -> bool:
        return record.provider_id.startswith(WAITING) or record.id in self.followers

    # -- timeouts -----------------------------------------------------------------------------

    def _push(self, group: _Group) -> None:
        heapq.heappush(self._heap, (group.deadline, next(self._order), group.key, group))
        if group.deadline < self._timer_at:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer_at = group.deadline
            self._timer = self.clock.callLater(
                max(0.0, group.deadline - self.clock.seconds()), self._on_timer
            )

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self.clock.seconds()
        while self._heap and self._heap[0][0] <= now:
            _, _, key, group = heapq.heappop(self._heap)
            if self.groups.get(key) is group:
                self._end(group, "timeout")
        if self._heap:
            due = self._heap[0][0]
            self._timer_at = due
            self._timer = self.clock.callLater(max(0.0, due - now), self._on_timer)

    def _end(self, group: _Group, why: str, state: int = UNDELIVERABLE) -> None:
        """Forget a group; if it never completed, the parts that came reach `state`."""
        if self.groups.get(group.key) is group:
            del self.groups[group.key]
        if group.done:
            return
        if group.parts:
            event(
                log,
                "long_message_incomplete",
                logging.WARNING,
                account=group.key[0],
                parts=len(group.parts),
                total=group.total,
                reason=why,
            )
        for part in group.parts.values():
            self._finalize(part.record, state, "000")

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    # -- after a restart ----------------------------------------------------------------------

    def forget_all(self) -> None:
        """This process no longer owns its messages (another took them over)."""
        self.stop()
        self.groups.clear()
        self.followers.clear()
        self._heap.clear()
        self._timer, self._timer_at = None, float("inf")

    def resume(self, records: list[MessageRecord] | None = None) -> None:
        """Link stored parts again (all live ones at start, or those just taken over from a
        process that died): followers to their live lead (or to its final state), and parts of
        groups that never completed to an UNDELIVERABLE at their timeout."""
        now = self.clock.seconds()
        pool = self.live.values() if records is None else records
        for record in [r for r in pool if r.provider_id.startswith(WAITING)]:
            lead_id = record.provider_id[len(WAITING) :]
            if not lead_id:
                account = self._account_of(record.account)
                timeout = account.reassembly_timeout if account is not None else 60.0
                key = ("", "", "", "resumed", next(self._order))
                group = _Group(key, 0, max(now, record.submitted_at + timeout), {1: _Part(1, record, b"", 0)})
                self.groups[key] = group
                self._push(group)
            elif lead_id in self.live:
                self.followers.setdefault(lead_id, []).append(record)
            else:
                self.store.get_message(lead_id, _mirror_final(self._finalize, record))


_RECORD_FIELDS = attrgetter(*(f.name for f in fields(MessageRecord)))


def _with_state(record: MessageRecord, state: int) -> MessageRecord:
    """A copy of `record` in `state` (what dataclasses.replace gives, at a third of its cost:
    it is built for every part of a long message)."""
    copy = MessageRecord(*_RECORD_FIELDS(record))
    copy.state = state
    return copy


def _mirror_final(
    finalize: Callable[..., None], follower: MessageRecord
) -> Callable[[MessageRecord | None], None]:
    def found(lead: MessageRecord | None) -> None:
        if lead is not None and lead.state >= 2:
            finalize(follower, lead.state, lead.err, lead.done_at)
        else:
            finalize(follower, UNKNOWN, "000")

    return found
