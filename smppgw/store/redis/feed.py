"""deliver_sm waiting in Redis reach a receiver in whichever process holds one.

Every account has a stream `rx:<account>` read through the consumer group "gw": each entry
goes to one process. A process reads an account's stream only while it has a receiver of that
account with room (`want`), as many entries as that room, in one blocking XREADGROUP over all
such streams and its own `inbox:<node>` (reports other processes forward to it; a "wake" entry
there ends the blocking read when an account gets room). An entry stays pending for the process
until its deliver_sm is answered (the commit script acknowledges and deletes it).

A process that holds entries touches them (resetting their idle time) every few seconds, so any
entry idle for longer than `claim_after` belongs to a process that died: readers take it over
(XAUTOCLAIM). When a process's last receiver of an account goes, what it holds goes back to the
stream as new entries (`give_back`) for a receiver elsewhere. Entries nobody reads for
`max_age` are dropped by a sweep that one process at a time runs (a lock key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from redis.exceptions import ResponseError

from smppgw.logs import event
from smppgw.store.base import OutboxRecord
from smppgw.store.redis.codec import record_from_entry, report_from_json

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
        self.held: dict[str, tuple[str, str]] = {}  # record key -> (account, entry id)
        self.reading: frozenset[str] = frozenset()
        self._woken = False
        self.tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- what the outbox says -------------------------------------------------------------------

    def want(self, account: str, room: int) -> None:
        if room <= 0:
            self.rooms.pop(account, None)
            return
        self.rooms[account] = room
        if account not in self.reading and not self._woken:
            self._woken = True
            self.store.background(self._wake())

    async def _wake(self) -> None:
        s = self.store
        try:
            await s.client.xadd(f"{s.prefix}inbox:{s.node}", {"t": "wake"})
        except Exception as e:
            self._woken = False
            log.debug("wake: %r", e)

    def entry_key(self, record: OutboxRecord) -> str:
        return f"{record.message_id}/final" if record.on_row else record.key

    async def give_back(self, records: list[OutboxRecord]) -> None:
        by_account: dict[str, list[str]] = defaultdict(list)
        for record in records:
            held = self.held.pop(self.entry_key(record), None)
            if held is not None:
                by_account[held[0]].append(held[1])
        for account, ids in by_account.items():
            await self._return(account, ids)

    # -- the loops ------------------------------------------------------------------------------

    def start(self) -> None:
        self.tasks = [self.store.background(self._read_loop()), self.store.background(self._keep_loop())]

    async def stop(self) -> None:
        self._stopping = True
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except BaseException:
                pass

    async def _read_loop(self) -> None:
        s = self.store
        inbox = f"{s.prefix}inbox:{s.node}"
        pause = 0.1
        while not self._stopping:
            try:
                accounts = [a for a, room in self.rooms.items() if room > 0]
                for account in accounts:
                    if account not in self.watched:
                        await self._ensure(account)
                streams = {inbox: ">"}
                streams.update({f"{s.prefix}rx:{a}": ">" for a in accounts})
                count = max([self.rooms.get(a, 0) for a in accounts] + [100])
                self.reading = frozenset(accounts)
                self._woken = False
                reply = await s.reader.xreadgroup(GROUP, s.node, streams, count=count, block=BLOCK_MS)
                self.reading = frozenset()
                s.up(True)
                pause = 0.1
                for stream, entries in reply or ():
                    name = stream.decode()
                    if name == inbox:
                        await self._inbox(inbox, entries)
                    else:
                        self._deliver(name[len(s.prefix) + 3 :], entries)
            except asyncio.CancelledError:
                raise
            except ResponseError as e:
                if "NOGROUP" in str(e):  # Redis lost them (a restart without persistence)
                    self.watched.clear()
                    await self._ensure_quietly()
                    continue
                log.error("event=receipt_read_failed error=%r", e)
                await asyncio.sleep(pause)
            except Exception as e:
                self.reading = frozenset()
                s.up(False, e)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _ensure_quietly(self) -> None:
        try:
            await self.store.ensure_inbox()
        except Exception as e:
            log.debug("inbox group: %r", e)

    async def _ensure(self, account: str) -> None:
        s = self.store
        try:
            await s.client.xgroup_create(f"{s.prefix}rx:{account}", GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        await s.client.sadd(f"{s.prefix}rxs", account)
        self.watched.add(account)

    def _deliver(self, account: str, entries: list[Any]) -> None:
        sink = self.store.sink
        unwanted: list[str] = []
        for entry_id, fields in entries:
            if not fields:
                continue  # deleted meanwhile (dropped as too old or too many)
            if account not in self.rooms:
                # read by a blocking call that began while a receiver was still here
                unwanted.append(entry_id.decode())
                continue
            record = record_from_entry(fields)
            self.held[self.entry_key(record)] = (account, entry_id.decode())
            self.rooms[account] -= 1
            sink.deliver(record)
        if unwanted:
            self.store.background(self._return(account, unwanted))

    async def _return(self, account: str, ids: list[str]) -> None:
        """Entries this process holds back to the stream, as new entries for any reader."""
        s = self.store
        try:
            n = await s.script("give_back", [s.node, *ids], keys=[f"{s.prefix}rx:{account}"])
        except Exception as e:  # taken over by another reader once idle for claim_after
            log.warning("event=give_back_failed records=%d error=%r", len(ids), e)
            return
        event(log, "receipts_given_back", account=account, records=int(n))

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
        by_account: dict[str, list[str]] = defaultdict(list)
        for account, entry in self.held.values():
            by_account[account].append(entry)
        for account, ids in by_account.items():
            for i in range(0, len(ids), 500):
                await s.script("touch", [s.node, *ids[i : i + 500]], keys=[f"{s.prefix}rx:{account}"])
        idle = int(self.claim_after * 1000)
        for account in list(self.rooms):
            if account not in self.watched:
                await self._ensure(account)
            stream = f"{s.prefix}rx:{account}"
            reply = await s.client.xautoclaim(stream, GROUP, s.node, idle, "0-0", count=100)
            entries = reply[1] if reply else []
            if entries:
                event(log, "receipts_adopted", logging.WARNING, account=account, records=len(entries))
                self._deliver(account, entries)

    async def _count_waiting(self) -> None:
        s = self.store
        accounts = [raw.decode() for raw in await s.client.smembers(f"{s.prefix}rxs")]
        if not accounts:
            return
        pipe = s.client.pipeline(transaction=False)
        for account in accounts:
            pipe.xlen(f"{s.prefix}rx:{account}")
        counts = dict(zip(accounts, map(int, await pipe.execute()), strict=True))
        if s.sink is not None:
            s.sink.waiting(counts)

    async def _sweep(self) -> None:
        s = self.store
        if not await s.client.set(f"{s.prefix}lock:sweep", s.node, nx=True, px=int(SWEEP_EVERY * 900)):
            return
        for raw in await s.client.smembers(f"{s.prefix}rxs"):
            account = raw.decode()
            dropped = await s.script("sweep", [s.prefix, account, int(self.max_age * 1000), SWEEP_LIMIT])
            s.report_dropped(dropped)
            await self._forget_dead_readers(f"{s.prefix}rx:{account}")

    async def _forget_dead_readers(self, stream: str) -> None:
        """Consumers of processes that are gone and hold nothing any more (what they held was
        taken over): off the group's list, which would otherwise grow with every restart."""
        s = self.store
        for c in await s.client.xinfo_consumers(stream, GROUP):
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if c["pending"] == 0 and name != s.node and not await s.client.exists(f"{s.prefix}node:{name}"):
                await s.client.xgroup_delconsumer(stream, GROUP, name)
