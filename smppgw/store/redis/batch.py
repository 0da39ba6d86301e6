"""What one commit of the Redis store carries, and the lanes that gather commits: the writes
of a batch encoded per partition (`Part`), the partition an op writes in, the merged answers
of the partitions' script calls, and the deliver_sm an answer says the script took."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from smppgw.store.base import (
    AddEvent,
    AddOutbox,
    Done,
    InsertMessage,
    Op,
    OutboxRecord,
    ReceiptDone,
    RemoveOutbox,
    ReplaceMessage,
    UpdateMessage,
)
from smppgw.store.redis.codec import encode_ops, record_from_entry
from smppgw.store.redis.keys import Keys

log = logging.getLogger("smppgw.store.redis")


def fresh(ops: Sequence[Op]) -> bool:
    """A write that brings something new from outside (a submit, an MO): its sender retries."""
    for op in ops:
        kind = type(op)
        if kind is InsertMessage or (kind is AddOutbox and not op.record.esm_class & 0x04):  # type: ignore[union-attr]
            return True
    return False


def partition(op: Op, keys: Keys, entries: dict[str, Any]) -> int:
    """The partition an op writes in: its message's (a removed deliver_sm: its entry's)."""
    kind = type(op)
    if kind is InsertMessage or kind is UpdateMessage or kind is ReplaceMessage:
        return keys.of(op.record.id)  # type: ignore[union-attr]
    if kind is AddOutbox:
        return keys.of(op.record.message_id)  # type: ignore[union-attr]
    if kind is RemoveOutbox:
        held = entries.get(op.key)  # type: ignore[union-attr]
        return held[2] if held is not None else 0
    if kind is ReceiptDone or kind is AddEvent:
        return keys.of(op.message_id)  # type: ignore[union-attr]
    raise TypeError(f"unknown store op {op!r}")  # pragma: no cover - a programming error


class Part:
    """The writes of one commit: a script call per partition they touch (one on one Redis),
    each encoded once (a retry sends the same ops)."""

    __slots__ = ("writes", "payloads", "count", "inserted")
    payloads: list[tuple[int, list[Any], list[OutboxRecord]]]  # partition, ops, the deliver_sm they add

    def __init__(
        self,
        writes: list[tuple[Sequence[Op], Done]],
        entries: dict[str, Any],
        keys: Keys,
        rooms: dict[str, int] | None = None,
        indexed: set[str] | None = None,
    ) -> None:
        self.writes = writes
        ops = [op for ops, _ in writes for op in ops]
        now = time.time()
        left = dict(rooms) if rooms else None  # (used up by the partitions' final receipts in turn)
        if keys.count == 1:
            payload, self.count, added = encode_ops(ops, now, entries, left, indexed)
            self.payloads = [(0, payload, added)]
        else:
            split: dict[int, list[Op]] = {}
            for op in ops:
                split.setdefault(partition(op, keys, entries), []).append(op)
            self.payloads, self.count = [], 0
            for p, some in sorted(split.items()):
                payload, n, added = encode_ops(some, now, entries, left, indexed)
                self.payloads.append((p, payload, added))
                self.count += n
        self.inserted = [
            op.record.id  # type: ignore[union-attr]
            for ops, _ in writes
            for op in ops
            if type(op) is InsertMessage
        ]

    def answer(self, error: BaseException | None) -> None:
        answer_all(self.writes, error)


def answer_all(writes: list[tuple[Sequence[Op], Done]], error: BaseException | None) -> None:
    for _ops, done in writes:
        try:
            done(error)
        except Exception:  # one caller's bug must not starve the others of their answer
            log.exception("event=store_callback_failed")


def merged(replies: list[Any]) -> list[Any]:
    """The partitions' answers as one: {fenced ids, early reports, dropped receipts, deliver_sm
    taken}."""
    if len(replies) == 1:
        return list(replies[0])
    out: list[list[Any]] = [[], [], [], []]
    for r in replies:
        for mine, theirs in zip(out, r, strict=True):
            mine.extend(theirs)
    return out


def taken_records(reply: list[Any], p: int, added: list[OutboxRecord]) -> list[Any]:
    """The deliver_sm a commit's script took for this process's receivers: (account, entry id,
    record, partition); a record the batch added is that record, one waiting before is read. A
    final receipt sent without its entry that found no room is owed here all the same, for the
    process to give back: its entry id is None."""
    out, flat = [], reply[3]
    for i in range(0, len(flat), 3):
        account, entry, what = flat[i].decode(), flat[i + 1].decode(), flat[i + 2]
        if type(what) is int:
            record = added[abs(what) - 1]
            if what < 0:
                entry = None
        else:
            record = record_from_entry(dict(zip(what[::2], what[1::2], strict=True)))
        out.append((account, entry, record, p))
    reply[3] = out
    return reply


def updated_ids(ops: Sequence[Op]) -> list[str]:
    """The ids of the records a write updates."""
    return [op.record.id for op in ops if type(op) is UpdateMessage]  # type: ignore[union-attr]


class Lane:
    """One lane's writes waiting, and whether a commit of it is due or in flight."""

    __slots__ = ("queue", "due", "busy", "updating")

    def __init__(self) -> None:
        self.queue: deque[tuple[Sequence[Op], Done]] = deque()
        self.due = False
        self.busy = False
        self.updating: dict[str, int] = {}  # record id -> its updates queued (the changes lane)

    def idle(self) -> bool:
        return not (self.queue or self.busy)

    def track(self, ids: list[str], step: int) -> None:
        updating = self.updating
        for i in ids:
            n = updating.get(i, 0) + step
            if n > 0:
                updating[i] = n
            else:
                updating.pop(i, None)
