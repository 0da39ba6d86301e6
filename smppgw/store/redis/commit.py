"""The Redis store's group commit (a mixin of RedisStore, which holds its state).

Writes go in two lanes, each with one commit in flight and the next gathering behind it:
  - new: a new message or MO (what a sender is waiting on with its window open);
  - changes: everything else (state changes, receipts, their settling, trail events, the empty
    write that waits for the writes before it), in the order they were made.
A commit is one round trip: a COMMIT script call per partition, and a WAIT with
`wait_replicas`. The lanes need no order between them: a message's first state change is made
only once its insert was committed (ack after durability, then dispatch), an MO's settle only
once it was read back. So a submit does not wait behind the state changes of a whole batch
(each costs Redis about as much as the insert itself), only behind the other submits.

When Redis is away (unreachable, full, read-only, loading), new messages and MO fail at once
(their senders send again) and what such a batch may have written is deleted before the next
commit of either lane; state changes are kept and written again, in order, until Redis takes
them (the script makes a second application harmless).

A commit's answer also brings the deliver_sm it took for this process's receivers (scripts.py):
they go to the feed with the records of the batch, as if read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson
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
from smppgw.store.base import Done, Op, OutboxRecord
from smppgw.store.redis.batch import Lane, Part, answer_all, fresh, merged, taken_records, updated_ids
from smppgw.store.redis.codec import report_from_json
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


class Commits:
    """Group commit; RedisStore provides the state it names (lanes, kept, client, …)."""

    _new: Lane
    _changes: Lane
    _kept: deque[Part]
    _compensate: list[str]
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
    indexed: set[str]  # ids of messages whose pid: key an update may have written (codec.encode_ops)
    max_per_account: int
    pid_ttl_ms: int
    trail_ttl_ms: int
    # and up(ok, error): RedisStore's record of whether Redis answers

    def write(self, ops: Sequence[Op], done: Done, *, high_id: int = 0) -> None:
        if fresh(ops):
            lane, flush = self._new, self._flush_new
        else:
            lane, flush = self._changes, self._flush_changes
            lane.track(updated_ids(ops), 1)
        lane.queue.append((ops, done))
        if not lane.due and not lane.busy:
            lane.due = True
            asyncio.get_event_loop().call_soon(flush)

    def settled(self) -> bool:
        """Nothing queued, in flight or kept."""
        return self._new.idle() and self._changes.idle() and not self._kept

    def _take(self, lane: Lane) -> list[tuple[Sequence[Op], Done]]:
        taken: list[tuple[Sequence[Op], Done]] = []
        count = 0
        while lane.queue and count < self.max_batch:
            ops, done = lane.queue.popleft()
            taken.append((ops, done))
            count += len(ops)
        return taken

    def _flush_new(self) -> None:
        """Start the next commit of new messages and MO; while Redis is away (state changes
        kept), refuse them at once instead."""
        lane = self._new
        lane.due = False
        if lane.busy or not lane.queue:
            return
        if self._kept:
            refused, lane.queue = list(lane.queue), deque()
            answer_all(refused, StoreUnavailable("redis unreachable"))
            return
        lane.busy = True
        start(self._commit_new(self._part(self._take(lane))))

    def _flush_changes(self) -> None:
        """Start the next commit of state changes: the kept batch alone while Redis is away,
        else what is queued (up to max_batch, and the later writes of the records cut)."""
        lane = self._changes
        lane.due = False
        if lane.busy or not (lane.queue or self._kept):
            return
        if self._kept:
            part = self._kept[0]
        else:
            taken = self._take(lane)
            for ops, _ in taken:
                lane.track(updated_ids(ops), -1)
            if lane.queue:
                self._take_followers(taken)
            part = self._part(taken)
        lane.busy = True
        start(self._commit_changes(part))

    def _part(self, writes: list[tuple[Sequence[Op], Done]]) -> Part:
        return Part(writes, self.feed.held, self.keys, self.feed.rooms, self.indexed)

    def _take_followers(self, taken: list[tuple[Sequence[Op], Done]]) -> None:
        """After a cut at max_batch: an update is encoded with its record's columns as they are
        now, so the record's later writes still queued (a final state with its receipt) go in
        this batch too; otherwise the script sees the final state without the receipt it owes,
        and the next batch's update of a message no longer open counts as not ours. The lane
        counts the updates queued per record, so the queue is read only as far as the last of
        them (a long queue, after Redis was away, is not read again at every cut)."""
        lane = self._changes
        ids = {i for ops, _ in taken for i in updated_ids(ops)}
        owed = sum(lane.updating.get(i, 0) for i in ids)  # their updates still queued
        skipped: list[tuple[Sequence[Op], Done]] = []
        while owed and lane.queue:
            ops, done = lane.queue.popleft()
            mine = updated_ids(ops)
            if not ids.intersection(mine):
                skipped.append((ops, done))
                continue
            taken.append((ops, done))
            lane.track(mine, -1)
            owed -= sum(1 for i in mine if i in ids)
            new = set(mine) - ids
            ids |= new
            owed += sum(lane.updating.get(i, 0) for i in new)
        lane.queue.extendleft(reversed(skipped))

    async def _attempt(self, part: Part) -> tuple[BaseException | None, Any]:
        """One commit of `part`: (None, the script's answer), or (why it failed, None). What a
        failed batch of new messages may have written goes first, as soon as either lane can
        (a process taking over would send it)."""
        try:
            if self._compensate:
                await self._undo_uncertain()
            result = await self._apply(part)
            self.up(True)
        except UNREACHABLE as e:
            return await self._away(e), None
        if isinstance(result, Exception):
            return self._refusal(result), None
        return None, result

    async def _commit_new(self, part: Part) -> None:
        error, result = await self._attempt(part)
        self._new.busy = False
        if error is not None:
            self._compensate.extend(part.inserted)
        self._done(part, error, result)
        if self._new.queue:
            self._flush_new()

    async def _commit_changes(self, part: Part) -> None:
        error, result = await self._attempt(part)
        lane = self._changes
        kept = bool(self._kept) and self._kept[0] is part
        if isinstance(error, StoreUnavailable):
            if not kept:
                self._kept.append(part)  # written again until Redis takes it
            await asyncio.sleep(0.2)
        else:
            if kept:
                self._kept.popleft()
            self._done(part, error, result)
        lane.busy = False
        if lane.queue or self._kept:
            self._flush_changes()

    async def _away(self, e: BaseException) -> StoreUnavailable:
        self.up(False, e)
        await self.shards.refresh()
        return StoreUnavailable(f"redis unreachable: {type(e).__name__}")

    def _refusal(self, r: Exception) -> BaseException:
        """A part's error reply: Redis "away" (kept, or refused at once), else a script error:
        this part can never succeed, and Redis may have applied some of it."""
        if isinstance(r, BUSY_ERRORS) or str(r).startswith(BUSY_STATES):
            self.up(False, r)
            return StoreUnavailable(f"redis refused the write: {str(r)[:60]}")
        log.error("event=store_commit_failed error=%r", r)
        return r

    def _done(self, part: Part, error: BaseException | None, result: Any) -> None:
        if error is None:
            self.batches += 1
            self.ops_written += part.count
        part.answer(error)
        if result is not None:
            self._after(result)

    async def _apply(self, part: Part) -> Any:
        """One round trip (per shard, all at once): a commit-script call per partition, with a
        WAIT; the partitions' results merged, or the first script error."""
        assert self.scripts is not None
        sha, now, keys = self.scripts.shas["commit"], repr(time.time()), self.keys
        maxper = -(-self.max_per_account // keys.count)  # each partition holds its share
        calls: list[tuple[str, list[Any]]] = []
        for p, args, added in part.payloads:
            route, here = keys.route(p), self._receivers_here(added)
            head = ("EVALSHA", sha, 1, route, keys.parts[p], self.node, now, maxper, self.pid_ttl_ms)
            calls.append((route, [*head, self.trail_ttl_ms, here, *args]))
        wait = None
        if self.config.wait_replicas:
            wait = (self.config.wait_replicas, int(self.config.wait_timeout * 1000))
        replies = await self.shards.run(calls, wait)
        if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted without scripts
            self.scripts.shas["commit"] = await self.client.script_load(ALL["commit"])
            return await self._apply(part)
        for r in replies:
            if isinstance(r, UNREACHABLE):
                raise r
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            return failed[0]
        return merged(
            [taken_records(r, p, added) for r, (p, _, added) in zip(replies, part.payloads, strict=True)]
        )

    def _receivers_here(self, added: list[OutboxRecord]) -> str:
        """How many of the deliver_sm a batch adds this process's receivers take now, per
        account (JSON for the script), '' for none."""
        rooms = self.feed.rooms
        if not added or not rooms:
            return ""
        counts: dict[str, int] = {}
        for record in added:
            account = record.account
            if rooms.get(account, 0) > counts.get(account, 0):
                counts[account] = counts.get(account, 0) + 1
        return orjson.dumps(counts).decode() if counts else ""

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
        fenced, early, dropped, taken = result
        if fenced:
            event(log, "not_owner", logging.WARNING, messages=len(fenced), first=fenced[0].decode())
        sink = self.sink
        for raw in early:
            provider, report = report_from_json(raw)
            if sink is not None:
                sink.forwarded(provider, report)
        self.report_dropped(dropped)
        if taken:
            self.feed.hand(taken)

    def report_dropped(self, dropped: list[Any]) -> None:
        for i in range(0, len(dropped), 4):
            account, mid, state, why = (x.decode() for x in dropped[i : i + 4])
            if self.sink is not None:
                self.sink.receipt_dropped(account, mid, int(state), why)
