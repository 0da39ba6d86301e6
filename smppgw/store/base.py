"""The durable state of the gateway, behind one interface: messages (with their final receipt
and the milestones of their trail), the outbox of other deliver_sm (intermediate receipts,
MO), trail events, and the message-id counter. Records are plain columns an operator can read
with the sqlite3 shell.

Writes are grouped: the gateway hands `write` a list of ops that must land together (a state
change and the receipt it causes) and gets a callback on the event loop once they are
committed. The store holds no business rules.

A store may be shared by several gateway processes (`shared`: the Redis store). The seam then
also carries what the processes share: a committed deliver_sm reaches the process that holds a
receiver of its account (`StoreSink.deliver`, for every store: SQLite hands it over right after
the commit), a provider's report reaches the process that owns its message (`route_report`),
a dead process's unfinished messages go to a live one (`StoreSink.claimed`), and bind counts,
token buckets and request slots hold for all processes together (`bind`, `bucket`, `slots`).
With one process (SQLite) these are the trivial local versions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from smppgw.providers.base import StatusReport

# message.state: 0 while the gateway still holds the message (not yet accepted by a provider),
# then the SMPP message_state values (1 ENROUTE … 8 REJECTED).
QUEUED = 0

# message.receipt: the final receipt a message owes its ESME, kept on the message row itself (no
# outbox row): none asked for, waiting for the ESME's deliver_sm_resp, or how it ended.
RECEIPT_NONE = 0
RECEIPT_OWED = 1
RECEIPT_DELIVERED = 2
RECEIPT_REFUSED = 3  # a permanent deliver_sm_resp error (0x65/0x66)
RECEIPT_DROPPED = 4  # waited too long, or too many waited (receipt_to says which)
RECEIPT_NAMES = {
    RECEIPT_NONE: "none",
    RECEIPT_OWED: "waiting",
    RECEIPT_DELIVERED: "delivered",
    RECEIPT_REFUSED: "refused",
    RECEIPT_DROPPED: "dropped",
}


@dataclass(slots=True)
class MessageRecord:
    id: str
    account: str
    source: str
    source_ton: int
    source_npi: int
    destination: str
    dest_ton: int
    dest_npi: int
    text: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    submitted_at: float  # epoch seconds
    state: int = QUEUED
    provider: str = ""
    provider_id: str = ""
    err: str = "000"
    attempts: int = 0
    done_at: float | None = None
    user_message_reference: int | None = None
    schedule_at: float | None = None
    valid_until: float | None = None
    sent_at: float | None = None  # when a provider accepted it
    receipt: int = RECEIPT_NONE
    receipt_at: float | None = None  # when the final receipt was answered (or dropped)
    receipt_to: str = ""  # the session that took it, or why it was dropped
    stored_at: float | None = None  # set by the store when the row is first written


@dataclass(slots=True)
class OutboxRecord:
    """A deliver_sm waiting for the ESME's deliver_sm_resp (a receipt, or an MO message)."""

    key: str  # unique: "<message_id>/<state>" for receipts
    account: str
    message_id: str
    state: int  # message_state the receipt reports
    source_addr: str  # deliver_sm source (the original destination)
    source_ton: int
    source_npi: int
    dest_addr: str  # deliver_sm destination (the original source)
    dest_ton: int
    dest_npi: int
    esm_class: int
    data_coding: int
    short_message: bytes  # the receipt text (ASCII) or MO bytes
    created_at: float
    user_message_reference: int | None = None
    network_error: int | None = None  # GSM network error code for the 0x0423 TLV, if any
    on_row: bool = False  # a final receipt carried by its message row, not an outbox row


# _OPS_NOTE: the ops are values nobody changes after building them, but they are not declared
# frozen: a frozen dataclass sets every field through object.__setattr__, which made building
# the three or four ops of every message cost twice as much (ReceiptDone: 0.46 -> 0.13 us).
# They hash and compare by their fields as before.


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class InsertMessage:
    record: MessageRecord


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class UpdateMessage:
    """Write the record's mutable columns (state, provider, provider_id, err, attempts, done_at,
    sent_at, receipt)."""

    record: MessageRecord


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class ReplaceMessage:
    """Write the content columns a replace_sm changes (text, data_coding, registered_delivery,
    schedule_at, valid_until) of a message the gateway still holds."""

    record: MessageRecord


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class AddOutbox:
    record: OutboxRecord


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class RemoveOutbox:
    key: str


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class ReceiptDone:
    """A message's final receipt ended: `receipt` RECEIPT_DELIVERED / _REFUSED / _DROPPED."""

    message_id: str
    receipt: int
    at: float
    to: str  # the session (peer) that answered, or the reason it was dropped


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One step in a message's trail beyond what its row records (an attempt that failed, a
    failover, an intermediate status, a receipt retried, …)."""

    at: float
    event: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True, unsafe_hash=True)  # see _OPS_NOTE
class AddEvent:
    message_id: str
    event: TrailEvent


Op = InsertMessage | UpdateMessage | AddOutbox | RemoveOutbox | ReplaceMessage | ReceiptDone | AddEvent
Done = Callable[[BaseException | None], None]
TrailDone = Callable[[MessageRecord | None, list[TrailEvent]], None]


@dataclass(slots=True)
class Snapshot:
    """What a gateway needs at start: unfinished messages, waiting receipts, the next id."""

    unfinished: list[MessageRecord]
    outbox: list[OutboxRecord]
    next_id: int
    receipts_owed: list[MessageRecord] = field(default_factory=list)  # final, receipt not yet answered
    id_limit: int | None = None  # ids below this are ours; None: no limit (one process)


class StoreSink(Protocol):
    """The gateway, as a store reaches it (always on the event loop)."""

    def deliver(self, record: OutboxRecord) -> None:
        """A committed deliver_sm (receipt or MO) for an account with a receiver in this process."""
        ...

    def forwarded(self, provider: str, report: StatusReport) -> None:
        """A provider's report that another process received for a message this one owns."""
        ...

    def claimed(self, records: list[MessageRecord]) -> None:
        """Unfinished messages of a process that died: this one carries them on."""
        ...

    def fenced(self) -> None:
        """This process was taken for dead and its messages went to others: forget them."""
        ...

    def receipt_dropped(self, account: str, message_id: str, state: int, why: str) -> None:
        """The store dropped a waiting deliver_sm (too many waited, or too long)."""
        ...

    def waiting(self, counts: dict[str, int]) -> None:
        """How many deliver_sm wait per account in a shared store (every process's together)."""
        ...

    def receipt_for(self, record: MessageRecord) -> OutboxRecord:
        """The final receipt a final message owes, as the gateway builds it (a shared store that
        keeps only that it is owed rebuilds it when another process takes it over)."""
        ...


class Bucket(Protocol):
    """A token bucket (`smppgw.tokens.TokenBucket`, or one shared by several processes)."""

    rate: float
    burst: float
    refused: int

    def take(self, now: float) -> bool: ...

    def level(self, now: float) -> float: ...

    def wait(self) -> float: ...


class Slots(Protocol):
    """Request slots of a provider shared by several processes (its max_concurrency)."""

    def take(self) -> bool:
        """One slot if this process holds a free one; False asks for more (`wake` follows)."""
        ...

    def give(self) -> None:
        """A request ended: its slot is free again."""
        ...


class Store(Protocol):
    shared: bool  # True when several gateway processes share this store

    def open(self) -> Snapshot:
        """Create or migrate the schema and load the state to resume (blocking, at start)."""
        ...

    def write(self, ops: Sequence[Op], done: Done, *, high_id: int = 0) -> None:
        """Commit `ops` in one transaction, grouped with other writes; `done` runs on the loop.

        `high_id` is the highest message-id number issued so far, persisted with the batch.
        """
        ...

    def get_message(self, message_id: str, done: Callable[[MessageRecord | None], None]) -> None: ...

    def get_trail(self, message_id: str, done: TrailDone) -> None:
        """The message (with its milestone columns) and its stored trail events, oldest first."""
        ...

    def purge(self, before: float, limit: int, done: Callable[[int, bool], None]) -> None:
        """Remove up to `limit` final messages done before `before` whose receipt is not owed
        (with their trail); `done(removed, more_left)` runs on the loop."""
        ...

    def healthy(self) -> bool: ...

    def may_send(self) -> bool:
        """False while this process cannot be sure it still owns its messages (its lease in a
        shared store is not renewed): no provider request may start then."""
        ...

    def close(self) -> Any:
        """Stop; may return a Deferred that fires once pending writes are done."""
        ...

    # -- what several processes share (one process: local versions) ------------------------

    def attach(self, sink: StoreSink) -> None:
        """Where committed deliver_sm, forwarded reports and claimed messages go."""
        ...

    def want_receipts(self, account: str, room: int) -> None:
        """This process can send `room` more deliver_sm to the account now (0: no receiver here
        any more: what it holds goes back for another process)."""
        ...

    def give_back(self, records: list[OutboxRecord]) -> None:
        """Records handed to `deliver` that this process will not send after all (its receiver
        went): back in the store for another process."""
        ...

    def route_report(self, provider: str, report: StatusReport) -> None:
        """A report for a message this process does not hold: to the process that does."""
        ...

    def reserve_ids(self, count: int, done: Callable[[int | None], None]) -> None:
        """`count` more message-id numbers from the first one given to `done` (None: failed)."""
        ...

    def bind(self, account: str, member: str, limit: int, done: Callable[[bool | None], None]) -> None:
        """Count one more bind of `account` if fewer than `limit` are bound in all processes;
        `done(True)`, `done(False)` at the limit, `done(None)` when the store cannot say."""
        ...

    def unbind(self, account: str, member: str) -> None: ...

    def bucket(self, name: str, rate: float, burst: float, now: float) -> Bucket:
        """The token bucket `name` (an account's throughput, a provider's requests/s)."""
        ...

    def slots(self, name: str, limit: int, wake: Callable[[], None]) -> Slots | None:
        """A provider's request slots shared by all processes; None: the local count is all."""
        ...
