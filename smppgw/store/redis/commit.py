"""The Redis store's group commit (a mixin of RedisStore, which holds its state).

Everything `write` gets in one loop turn goes to Redis in one round trip: up to two calls of the
COMMIT script, state changes first, then new messages and MO, and a WAIT with `wait_replicas`.
The next batch gathers while one is in flight. When Redis is away (unreachable, full, read-only,
loading), new messages and MO fail at once (their senders send again) and what such a batch may
have written is deleted before the next commit; state changes are kept and written again, in
order, until Redis takes them (the script makes a second application harmless).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from smppgw.aio import start
from smppgw.logs import event
from smppgw.store.base import (
    AddEvent,
    AddOutbox,
    Done,
    InsertMessage,
    Op,
    ReceiptDone,
    RemoveOutbox,
    ReplaceMessage,
    UpdateMessage,
)
from smppgw.store.redis.codec import encode_ops, report_from_json
from smppgw.store.redis.keys import Keys
from smppgw.store.redis.scripts import ALL
from smppgw.store.redis.shards import MOVING

log = logging.getLogger("smppgw.store.redis")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, *MOVING)
# Refusals that pass (memory freed, a fail-over done, a script finished): kept and tried again.
BUSY_ERRORS = (OutOfMemoryError, ReadOnlyError, MasterDownError, TryAgainError)
BUSY_STATES = ("NOREPLICAS", "BUSY")  # refusals redis-py has no exception class for


class StoreUnavailable(Exception):
    """Redis could not take the batch; the submit or MO in it was not stored."""


def _fresh(ops: Sequence[Op]) -> bool:
    """A write that brings something new from outside (a submit, an MO): its sender retries."""
    for op in ops:
        kind = type(op)
        if kind is InsertMessage or (kind is AddOutbox and not op.record.esm_class & 0x04):  # type: ignore[union-attr]
            return True
    return False


def _partition(op: Op, keys: Keys, entries: dict[str, Any]) -> int:
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


class _Part:
    """The writes of one commit: a script call per partition they touch (one on one Redis),
    each encoded once (a retry sends the same bytes)."""

    __slots__ = ("writes", "payloads", "count", "inserted")

    def __init__(self, writes: list[tuple[Sequence[Op], Done]], entries: dict[str, Any], keys: Keys) -> None:
        self.writes = writes
        ops = [op for ops, _ in writes for op in ops]
        now = time.time()
        if keys.count == 1:
            payload, self.count = encode_ops(ops, now, entries)
            self.payloads = [(0, payload)]
        else:
            split: dict[int, list[Op]] = {}
            for op in ops:
                split.setdefault(_partition(op, keys, entries), []).append(op)
            self.payloads, self.count = [], 0
            for p, some in sorted(split.items()):
                payload, n = encode_ops(some, now, entries)
                self.payloads.append((p, payload))
                self.count += n
        self.inserted = [
            op.record.id  # type: ignore[union-attr]
            for ops, _ in writes
            for op in ops
            if type(op) is InsertMessage
        ]

    def answer(self, error: BaseException | None) -> None:
        _answer(self.writes, error)


def _answer(writes: list[tuple[Sequence[Op], Done]], error: BaseException | None) -> None:
    for _ops, done in writes:
        try:
            done(error)
        except Exception:  # one caller's bug must not starve the others of their answer
            log.exception("event=store_callback_failed")


def _merged(replies: list[Any]) -> list[Any]:
    """The partitions' answers as one: {fenced ids, early reports, dropped receipts}."""
    if len(replies) == 1:
        return list(replies[0])
    out: list[list[Any]] = [[], [], []]
    for r in replies:
        for mine, theirs in zip(out, r, strict=True):
            mine.extend(theirs)
    return out


class Commits:
    """Group commit; RedisStore provides the state it names (queue, kept, client, …)."""

    _queue: deque[tuple[Sequence[Op], Done]]
    _kept: deque[_Part]
    _compensate: list[str]
    _flush_due: bool
    _committing: bool
    batches: int
    ops_written: int
    config: Any
    client: Any
    scripts: Any
    sink: Any
    feed: Any
    prefix: str
    keys: Keys
    shards: Any
    node: str
    max_batch: int
    max_per_account: int
    pid_ttl_ms: int
    trail_ttl_ms: int
    # and up(ok, error): RedisStore's record of whether Redis answers

    def write(self, ops: Sequence[Op], done: Done, *, high_id: int = 0) -> None:
        self._queue.append((ops, done))
        if not self._flush_due and not self._committing:
            self._flush_due = True
            asyncio.get_event_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Start the next commit: a kept batch alone while Redis is away (new submits and MO
        fail at once meanwhile), else everything queued, as one round trip of up to two script
        calls: state changes, then new messages (so that only the second can fail fast)."""
        self._flush_due = False
        if self._committing or not (self._queue or self._kept):
            return
        if self._kept:
            keep: deque[tuple[Sequence[Op], Done]] = deque()
            refused: list[tuple[Sequence[Op], Done]] = []
            while self._queue:
                ops, done = self._queue.popleft()
                (refused if _fresh(ops) else keep).append((ops, done))
            self._queue = keep
            _answer(refused, StoreUnavailable("redis unreachable"))
            state, fresh = self._kept[0], None
        else:
            state_writes: list[tuple[Sequence[Op], Done]] = []
            fresh_writes: list[tuple[Sequence[Op], Done]] = []
            count = 0
            while self._queue and count < self.max_batch:
                ops, done = self._queue.popleft()
                (fresh_writes if _fresh(ops) else state_writes).append((ops, done))
                count += len(ops)
            if self._queue:
                self._take_followers(state_writes, fresh_writes)
            entries, keys = self.feed.held, self.keys
            state = _Part(state_writes, entries, keys) if state_writes else None
            fresh = _Part(fresh_writes, entries, keys) if fresh_writes else None
        self._committing = True
        start(self._commit(state, fresh))

    def _take_followers(
        self, state_writes: list[tuple[Sequence[Op], Done]], fresh_writes: list[tuple[Sequence[Op], Done]]
    ) -> None:
        """After a cut at max_batch: an update is encoded with its record's columns as they are
        now, so the record's later writes still queued (a final state with its receipt) go in
        this batch too; otherwise the script sees the final state without the receipt it owes,
        and the next batch's update of a message no longer open counts as not ours."""
        taken = state_writes + fresh_writes
        ids = {op.record.id for ops, _ in taken for op in ops if type(op) is UpdateMessage}  # type: ignore[union-attr]
        rest: deque[tuple[Sequence[Op], Done]] = deque()
        for ops, done in self._queue:
            mine = {op.record.id for op in ops if type(op) is UpdateMessage}  # type: ignore[union-attr]
            if mine & ids:
                ids |= mine
                (fresh_writes if _fresh(ops) else state_writes).append((ops, done))
            else:
                rest.append((ops, done))
        self._queue = rest

    async def _commit(self, state: _Part | None, fresh: _Part | None) -> None:
        errors: list[BaseException | None] = [None, None]
        results: list[Any] = [None, None]
        try:
            if self._compensate:
                await self._undo_uncertain()
            results = await self._apply([state, fresh])
            self.up(True)
        except UNREACHABLE as e:
            self.up(False, e)
            errors = [StoreUnavailable(f"redis unreachable: {type(e).__name__}")] * 2
            await self.shards.refresh()
        for i, r in enumerate(results):
            if isinstance(r, Exception):
                results[i] = None
                if isinstance(r, BUSY_ERRORS) or str(r).startswith(BUSY_STATES):  # Redis is "away"
                    self.up(False, r)
                    errors[i] = StoreUnavailable(f"redis refused the write: {str(r)[:60]}")
                    continue
                # a script error: this part can never succeed; Redis may have applied some of it
                log.error("event=store_commit_failed error=%r", r)
                errors[i] = r
        self._committing = False
        kept = bool(self._kept) and self._kept[0] is state
        if state is not None:
            if isinstance(errors[0], StoreUnavailable):
                if not kept:
                    self._kept.append(state)  # written again until Redis takes it
            else:
                if kept:
                    self._kept.popleft()
                self._done(state, errors[0], results[0])
        if fresh is not None:
            if errors[1] is not None:
                self._compensate.extend(fresh.inserted)
            self._done(fresh, errors[1], results[1])
        if self._kept and isinstance(errors[0], StoreUnavailable):
            await asyncio.sleep(0.2)
        if self._queue or self._kept:
            self._flush()

    def _done(self, part: _Part, error: BaseException | None, result: Any) -> None:
        if error is None:
            self.batches += 1
            self.ops_written += part.count
        part.answer(error)
        if result is not None:
            self._after(result)

    async def _apply(self, parts: list[_Part | None]) -> list[Any]:
        """One round trip (per shard, all at once): a commit-script call per part and
        partition, with a WAIT; per-part results (the partitions' merged), a script error as
        the exception in its place."""
        assert self.scripts is not None
        sha, now, keys = self.scripts.shas["commit"], repr(time.time()), self.keys
        maxper = -(-self.max_per_account // keys.count)  # each partition holds its share
        calls: list[tuple[str, list[Any]]] = []
        for part in parts:
            for p, payload in part.payloads if part is not None else ():
                head = [keys.parts[p], self.node, now, maxper, self.pid_ttl_ms]
                route = keys.route(p)
                calls.append((route, ["EVALSHA", sha, 1, route, *head, payload, self.trail_ttl_ms]))
        wait = None
        if self.config.wait_replicas:
            wait = (self.config.wait_replicas, int(self.config.wait_timeout * 1000))
        replies = await self.shards.run(calls, wait)
        if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted without scripts
            self.scripts.shas["commit"] = await self.client.script_load(ALL["commit"])
            return await self._apply(parts)
        for r in replies:
            if isinstance(r, UNREACHABLE):
                raise r
        out: list[Any] = []
        for part in parts:
            if part is None:
                out.append(None)
                continue
            mine, replies = replies[: len(part.payloads)], replies[len(part.payloads) :]
            failed = [r for r in mine if isinstance(r, Exception)]
            out.append(failed[0] if failed else _merged(mine))
        return out

    async def _undo_uncertain(self) -> None:
        """Delete the messages of failed batches that Redis may have stored after all: nobody
        was told they were accepted, so nobody may send them."""
        ids, self._compensate = self._compensate, []
        try:
            pipe = self.client.pipeline(transaction=False)
            for mid in ids:
                part = self.keys.part(mid)
                pipe.delete(f"{part}m:{mid}")
                pipe.srem(f"{part}open:{self.node}", mid)
            await pipe.execute()
        except BaseException:
            self._compensate = ids + self._compensate
            raise
        event(log, "uncertain_submits_removed", messages=len(ids))

    def _after(self, result: Any) -> None:
        fenced, early, dropped = result
        if fenced:
            event(log, "not_owner", logging.WARNING, messages=len(fenced), first=fenced[0].decode())
        sink = self.sink
        for raw in early:
            provider, report = report_from_json(raw)
            if sink is not None:
                sink.forwarded(provider, report)
        self.report_dropped(dropped)

    def report_dropped(self, dropped: list[Any]) -> None:
        for i in range(0, len(dropped), 4):
            account, mid, state, why = (x.decode() for x in dropped[i : i + 4])
            if self.sink is not None:
                self.sink.receipt_dropped(account, mid, int(state), why)
