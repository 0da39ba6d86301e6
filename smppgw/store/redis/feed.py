"""deliver_sm waiting in Redis reach a receiver in whichever process holds one.

Every account has a stream `rx:<account>` read through the consumer group "gw": each entry
goes to one process. A process reads an account's stream only while it has a receiver of that
account with room (`want`), as many entries as that room, in one blocking XREADGROUP over all
such streams and its own `inbox:<node>` (reports other processes forward to it; a "wake" entry
there ends the blocking read when an account gets room). A commit that adds deliver_sm for an
account with room here takes them for this process itself (scripts.py), and `hand` gets them
with the records the process already has; a final receipt taken so has no stream entry at all,
its message only stays in `open:<node>` (held here with the entry id ''). An entry stays pending
for the process until its deliver_sm is answered (the commit script acknowledges and deletes
it, or takes the message off `open:`).

A process that holds entries touches them (resetting their idle time) every few seconds, so any
entry idle for longer than `claim_after` belongs to a process that died: readers take it over
(XAUTOCLAIM). When a process's last receiver of an account goes, what it holds goes back to the
stream as new entries (`give_back`; a receipt owed here without one gets one, REQUEUE) for a
receiver elsewhere. The owed receipts of a process that died (their messages moved to the
taker-over's `open:` by CLAIM), or that a process of the same name left before a restart, are
`orphans`: rebuilt from their messages (`StoreSink.receipt_for`) and added to their streams.
Entries nobody reads for `max_age` are dropped by a sweep that one process at a time runs (a
lock key).

On a Redis Cluster each partition (keys.py) has its own streams and inbox, on its shard: a
receipt's entry is in its message's partition. A process reads each partition with a blocking
read of its own, all at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from redis.exceptions import ResponseError

from smppgw.logs import event
from smppgw.store.base import RECEIPT_OWED, OutboxRecord
from smppgw.store.redis.codec import entry_blob, record_from_entry, report_from_json
from smppgw.store.redis.shards import MOVING

log = logging.getLogger("smppgw.store.redis")

GROUP = "gw"
BLOCK_MS = 2000
SWEEP_EVERY = 60.0
SWEEP_LIMIT = 500


class Feed:
    def __init__(self, store: Any, max_age: float, claim_after: float) -> None:
        self.store = store
        self.max_age, self.claim_after = max_age, claim_after
        self.rooms: dict[str, int] = {}  # account -> deliver_sm its receivers here take now
        self.watched: set[str] = set()  # accounts whose stream and group are known to exist
        self.held: dict[str, tuple[str, str, int]] = {}  # record key -> (account, entry id, partition)
        self.orphans: set[str] = set()  # final messages in our `open:` whose receipt's record is not here
        self.reading: dict[int, frozenset[str]] = {}  # partition -> accounts its blocking read reads
        self._woken: set[int] = set()  # partitions whose blocked read a wake is on its way to
        self.tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- what the outbox says -------------------------------------------------------------------

    def want(self, account: str, room: int) -> None:
        if room <= 0:
            self.rooms.pop(account, None)
            return
        self.rooms[account] = room
        # a reader between reads takes the account in its next one; a blocked read without it
        # is woken (an entry in its inbox), once
        unread = [p for p, r in self.reading.items() if account not in r and p not in self._woken]
        if unread:
            self._woken.update(unread)
            self.store.background(self._wake(unread))

    async def _wake(self, partitions: list[int]) -> None:
        s = self.store
        try:
            for p in partitions:
                await s.client.xadd(f"{s.keys.parts[p]}inbox:{s.node}", {"t": "wake"})
        except Exception as e:
            self._woken.difference_update(partitions)
            log.debug("wake: %r", e)

    def entry_key(self, record: OutboxRecord) -> str:
        return f"{record.message_id}/final" if record.on_row else record.key

    async def give_back(self, records: list[OutboxRecord]) -> None:
        items = []
        for record in records:
            held = self.held.pop(self.entry_key(record), None)
            if held is not None:
                items.append((held[0], held[1], record, held[2]))
        await self._return(items)

    # -- the loops ------------------------------------------------------------------------------

    def start(self) -> None:
        readers = [self.store.background(self._read_loop(p)) for p in range(self.store.keys.count)]
        self.tasks = [*readers, self.store.background(self._keep_loop())]

    async def stop(self) -> None:
        self._stopping = True
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except BaseException:
                pass

    async def _read_loop(self, p: int) -> None:
        s = self.store
        part = s.keys.parts[p]
        inbox = f"{part}inbox:{s.node}"
        pause = 0.1
        while not self._stopping:
            try:
                while True:  # from here to the read, nothing awaits: `reading` is what it reads
                    accounts = [a for a, room in self.rooms.items() if room > 0]
                    new = [a for a in accounts if a not in self.watched]
                    if not new:
                        break
                    for account in new:
                        await self._ensure(account)
                client = await s.shards.reading(inbox)
                accounts = [a for a, room in self.rooms.items() if room > 0 and a in self.watched]
                streams = {inbox: ">"}
                streams.update({f"{part}rx:{a}": ">" for a in accounts})
                count = max([self.rooms.get(a, 0) for a in accounts] + [100])
                self.reading[p] = frozenset(accounts)
                self._woken.discard(p)
                reply = await client.xreadgroup(GROUP, s.node, streams, count=count, block=BLOCK_MS)
                self.reading.pop(p, None)
                s.up(True)
                pause = 0.1
                for stream, entries in reply or ():
                    name = stream.decode()
                    if name == inbox:
                        await self._inbox(inbox, entries)
                    else:
                        self._deliver(name[len(part) + 3 :], entries, p)
            except asyncio.CancelledError:
                raise
            except MOVING as e:  # the slot is on another primary now (a fail-over)
                await self._lost(p, e)
                await asyncio.sleep(pause)
            except ResponseError as e:
                if "NOGROUP" in str(e):  # Redis lost them (a restart without persistence)
                    self.watched.clear()
                    await self._ensure_quietly()
                    continue
                log.error("event=receipt_read_failed error=%r", e)
                await asyncio.sleep(pause)
            except Exception as e:
                await self._lost(p, e)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _lost(self, p: int, error: BaseException) -> None:
        """Partition p's read failed: Redis is away, or (a cluster) its primary may be gone:
        where is the slot now?"""
        self.reading.pop(p, None)
        self.store.up(False, error)
        if self.store.shards.cluster:
            await self.store.shards.refresh()

    async def _ensure_quietly(self) -> None:
        try:
            await self.store.ensure_inbox()
        except Exception as e:
            log.debug("inbox group: %r", e)

    async def _ensure(self, account: str) -> None:
        s = self.store
        for part in s.keys.parts:
            try:
                await s.client.xgroup_create(f"{part}rx:{account}", GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            await s.client.sadd(f"{part}rxs", account)
        self.watched.add(account)

    def _deliver(self, account: str, entries: list[Any], p: int) -> None:
        # (an entry without fields was deleted meanwhile: dropped as too old or too many)
        self.hand([(account, e.decode(), record_from_entry(fields), p) for e, fields in entries if fields])

    def hand(self, taken: list[tuple[str, str | None, OutboxRecord, int]]) -> None:
        """Entries now pending for this process (read, taken over, or taken by a commit) to the
        outbox: (account, entry id, record, partition)."""
        sink = self.store.sink
        unwanted = []
        for account, entry_id, record, p in taken:
            if entry_id is None or account not in self.rooms:
                # read by a call that began while a receiver was still here, or owed here by a
                # commit that found no room for it
                unwanted.append((account, entry_id or "", record, p))
                continue
            self.held[self.entry_key(record)] = (account, entry_id, p)
            self.rooms[account] -= 1
            sink.deliver(record)
        if unwanted:
            self.store.background(self._return(unwanted))

    async def _return(self, items: list[tuple[str, str, OutboxRecord, int]]) -> None:
        """What this process holds back to the streams, for any reader: (account, entry id,
        record, partition). An entry goes again as a new entry (GIVE_BACK), a final receipt owed
        here without one gets one (REQUEUE)."""
        s = self.store
        entries: dict[tuple[str, int], list[str]] = defaultdict(list)
        owed: dict[tuple[str, int], list[str]] = defaultdict(list)
        for account, entry_id, record, p in items:
            if entry_id:
                entries[account, p].append(entry_id)
            else:
                owed[account, p] += [record.message_id, account, entry_blob(record)]
        for (account, p), ids in entries.items():
            try:
                n = await s.script("give_back", [s.node, *ids], keys=[f"{s.keys.parts[p]}rx:{account}"])
            except Exception as e:  # taken over by another reader once idle for claim_after
                log.warning("event=give_back_failed records=%d error=%r", len(ids), e)
                continue
            event(log, "receipts_given_back", account=account, records=int(n))
        for (account, p), args in owed.items():
            try:
                n = await self._requeue(p, args)
            except Exception as e:  # rebuilt from their messages and added by the keep loop
                log.warning("event=give_back_failed records=%d error=%r", len(args) // 3, e)
                self.orphans.update(args[::3])
                continue
            event(log, "receipts_given_back", account=account, records=int(n))

    async def requeue_orphans(self) -> None:
        """The receipts owed here (their messages in our `open:`) whose record this process does
        not have (taken over from a dead process, or left by a process of this name before a
        restart): rebuilt from their messages and added to their streams; a message gone or no
        longer owing one leaves the set (REQUEUE keeps an unfinished one there). If Redis fails
        midway, all of them are tried again (REQUEUE passes over those done)."""
        s = self.store
        ids, self.orphans = sorted(self.orphans), set()
        try:
            messages = {m.id: m for m in await s.lease.load(ids)}
            by_part: dict[int, list[str]] = defaultdict(list)
            for mid in ids:
                m = messages.get(mid)
                if m is not None and m.state >= 2 and m.receipt == RECEIPT_OWED:
                    record = s.sink.receipt_for(m)
                    by_part[s.keys.of(mid)] += [mid, record.account, entry_blob(record)]
                else:
                    by_part[s.keys.of(mid)] += [mid, "", ""]
            added = 0
            for p, args in by_part.items():
                added += await self._requeue(p, args)
        except BaseException:
            self.orphans.update(ids)
            raise
        event(log, "receipts_requeued", logging.WARNING, records=len(ids), added=added)

    async def _requeue(self, p: int, triples: list[str]) -> int:
        s = self.store
        return int(await s.script("requeue", [s.keys.parts[p], s.node, *triples], keys=[s.keys.route(p)]))

    async def _inbox(self, inbox: str, entries: list[Any]) -> None:
        s = self.store
        ids = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            if fields.get(b"t") == b"report":
                try:
                    provider, report = report_from_json(fields[b"r"])
                except (KeyError, ValueError) as e:
                    log.error("event=forwarded_report_unreadable error=%r", e)
                    continue
                s.sink.forwarded(provider, report)
        if ids:
            pipe = s.client.pipeline(transaction=False)
            pipe.xack(inbox, GROUP, *ids)
            pipe.xdel(inbox, *ids)
            await pipe.execute()

    async def _keep_loop(self) -> None:
        """Every claim_after/3: touch what this process holds, take over what dead processes
        held, and (one process at a time) drop what waited longer than max_age."""
        s = self.store
        next_sweep = time.monotonic() + 5.0
        while not self._stopping:
            await asyncio.sleep(max(1.0, self.claim_after / 3))
            try:
                if self.orphans and s.sink is not None:
                    await self.requeue_orphans()
                await self._touch_and_adopt()
                await self._count_waiting()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                s.up(False, e)

    async def _touch_and_adopt(self) -> None:
        s = self.store
        by_stream: dict[str, list[str]] = defaultdict(list)
        for account, entry, p in self.held.values():
            if entry:  # (a receipt owed here without an entry is kept by our heartbeat)
                by_stream[f"{s.keys.parts[p]}rx:{account}"].append(entry)
        for stream, ids in by_stream.items():
            for i in range(0, len(ids), 500):
                await s.script("touch", [s.node, *ids[i : i + 500]], keys=[stream])
        idle = int(self.claim_after * 1000)
        for account in list(self.rooms):
            if account not in self.watched:
                await self._ensure(account)
            for p, part in enumerate(s.keys.parts):
                stream = f"{part}rx:{account}"
                reply = await s.client.xautoclaim(stream, GROUP, s.node, idle, "0-0", count=100)
                entries = reply[1] if reply else []
                if entries:
                    event(log, "receipts_adopted", logging.WARNING, account=account, records=len(entries))
                    self._deliver(account, entries, p)

    async def _count_waiting(self) -> None:
        s = self.store
        streams = [
            (raw.decode(), part) for part in s.keys.parts for raw in await s.client.smembers(f"{part}rxs")
        ]
        if not streams:
            return
        pipe = s.client.pipeline(transaction=False)
        for account, part in streams:
            pipe.xlen(f"{part}rx:{account}")
        counts: dict[str, int] = defaultdict(int)
        for (account, _), n in zip(streams, await pipe.execute(), strict=True):
            counts[account] += int(n)
        if s.sink is not None:
            s.sink.waiting(counts)

    async def _sweep(self) -> None:
        s = self.store
        if not await s.client.set(f"{s.g}lock:sweep", s.node, nx=True, px=int(SWEEP_EVERY * 900)):
            return
        for p, part in enumerate(s.keys.parts):
            for raw in await s.client.smembers(f"{part}rxs"):
                account = raw.decode()
                args = [part, account, int(self.max_age * 1000), SWEEP_LIMIT]
                s.report_dropped(await s.script("sweep", args, [s.keys.route(p)]))
                await self._forget_dead_readers(f"{part}rx:{account}")

    async def _forget_dead_readers(self, stream: str) -> None:
        """Consumers of processes that are gone and hold nothing any more (what they held was
        taken over): off the group's list, which would otherwise grow with every restart."""
        s = self.store
        for c in await s.client.xinfo_consumers(stream, GROUP):
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if c["pending"] == 0 and name != s.node and not await s.client.exists(f"{s.g}node:{name}"):
                await s.client.xgroup_delconsumer(stream, GROUP, name)
