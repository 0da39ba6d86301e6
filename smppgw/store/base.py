"""The durable state of the gateway, behind one interface: messages, the receipt outbox and the
message-id counter. Records are plain columns an operator can read with the sqlite3 shell.

Writes are grouped: the gateway hands `write` a list of ops that must land together (a state
change and the receipt it causes) and gets a callback on the event loop once they are
committed. The store holds no business rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# message.state: 0 while the gateway still holds the message (not yet accepted by a provider),
# then the SMPP message_state values (1 ENROUTE … 8 REJECTED).
QUEUED = 0


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


@dataclass(frozen=True, slots=True)
class InsertMessage:
    record: MessageRecord


@dataclass(frozen=True, slots=True)
class UpdateMessage:
    """Write the record's mutable columns (state, provider, provider_id, err, attempts, done_at)."""

    record: MessageRecord


@dataclass(frozen=True, slots=True)
class ReplaceMessage:
    """Write the content columns a replace_sm changes (text, data_coding, registered_delivery,
    schedule_at, valid_until) of a message the gateway still holds."""

    record: MessageRecord


@dataclass(frozen=True, slots=True)
class AddOutbox:
    record: OutboxRecord


@dataclass(frozen=True, slots=True)
class RemoveOutbox:
    key: str


@dataclass(slots=True)
class TrailEvent:
    """One timed event in a message's life (accepted, sent to a provider, a status, a receipt…),
    kept as long as the message."""

    at: float  # epoch seconds
    event: str
    detail: dict[str, object] = field(default_factory=dict)


Op = InsertMessage | UpdateMessage | AddOutbox | RemoveOutbox | ReplaceMessage
Done = Callable[[BaseException | None], None]


@dataclass(slots=True)
class Snapshot:
    """What a gateway needs at start: unfinished messages, waiting receipts, the next id."""

    unfinished: list[MessageRecord]
    outbox: list[OutboxRecord]
    next_id: int


class Store(Protocol):
    def open(self) -> Snapshot:
        """Create or migrate the schema and load the state to resume (blocking, at start)."""
        ...

    def write(self, ops: Sequence[Op], done: Done, *, high_id: int = 0) -> None:
        """Commit `ops` in one transaction, grouped with other writes; `done` runs on the loop.

        `high_id` is the highest message-id number issued so far, persisted with the batch.
        """
        ...

    def get_message(self, message_id: str, done: Callable[[MessageRecord | None], None]) -> None: ...

    def get_trail(
        self, message_id: str, done: Callable[[MessageRecord | None, list[TrailEvent]], None]
    ) -> None:
        """The message and its trail, oldest event first; `done` runs on the loop."""
        ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...
