"""This process among those sharing one Redis: its name and heartbeat, and taking over the work
of a process whose heartbeat stopped.

Every process renews `node:<name>` (expiring after `claim_after`) every second and looks for
processes whose key expired; the first to run the CLAIM script for a dead process takes all of
its open messages (they move to its `open:` set, and each message's `node` field names it)
and the reports forwarded to it, then resumes the unfinished ones as after a restart and adds
the receipts the dead process owed without a stream entry to their streams. A process that cannot
renew its heartbeat for half of `claim_after` stops starting provider requests (`may_send`), so
that it never sends what another process has taken over; when it reaches Redis again and finds
its work taken, it drops what it held (`StoreSink.fenced`) and carries on as a new process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from smppgw.logs import event
from smppgw.store.base import MessageRecord
from smppgw.store.redis.codec import message_from_hash

log = logging.getLogger("smppgw.store.redis")

BEAT = 1.0  # seconds between heartbeats (claim_after is at least 3)
LOAD_CHUNK = 500  # messages read per round trip when taking over work


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class NameInUse(Exception):
    """Another live process already uses this node name."""


def register(client: Any, prefix: str, name: str, token: str, claim_after: float) -> None:
    """Take the name at start (blocking): at once when free; when a key is there, wait for it to
    expire (a previous process of this name that died), or refuse if something renews it."""
    key, ttl = f"{prefix}node:{name}", int(claim_after * 1000)
    deadline = time.monotonic() + claim_after + 2
    last_ttl: int | None = None
    while not client.set(key, token, nx=True, px=ttl):
        left = client.pttl(key)
        if last_ttl is not None and left > last_ttl:
            raise NameInUse(
                f"store.node {name!r} is in use by a running gateway (its heartbeat is renewed); "
                "give each process its own name"
            )
        if time.monotonic() > deadline:
            raise NameInUse(f"store.node {name!r}: the heartbeat key {key} does not expire")
        if last_ttl is None:
            event(log, "node_name_waiting", logging.WARNING, node=name, seconds=round(left / 1000, 1))
        last_ttl = left
        time.sleep(0.5)
    # a claim of this name's work still under way (another process takes over what a previous
    # process of this name left): wait for it to end, or drop it if its claimer died too
    while (by := client.hget(f"{prefix}claims", name)) is not None:
        if not client.exists(f"{prefix}node:{by.decode()}"):
            client.hdel(f"{prefix}claims", name)
            break
        if time.monotonic() > deadline + claim_after:
            raise NameInUse(f"store.node {name!r}: another process is still taking over its work")
        time.sleep(0.1)
    client.sadd(f"{prefix}nodes", name)


class Lease:
    """The heartbeat and the claim loop, as one asyncio task."""

    def __init__(self, store: Any, claim_after: float) -> None:
        self.store = store
        self.claim_after = claim_after
        self.last_renewal = time.monotonic()
        self.conflict = False  # another process renews our name
        self.fenced_at: float | None = None
        self.being_taken = False  # another process is taking our work over (HEARTBEAT said 3)
        self.claimed = 0  # messages taken over from dead processes
        self.task: asyncio.Task[None] | None = None
        self._stopping = False

    def may_send(self) -> bool:
        return not self.conflict and time.monotonic() - self.last_renewal < self.claim_after / 2

    def start(self, begin: Callable[..., asyncio.Task[None]]) -> None:
        self.task = begin(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except BaseException:
                pass

    async def _run(self) -> None:
        s = self.store
        next_claim = 0.0
        while not self._stopping:
            try:
                await self._beat()
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + max(BEAT, self.claim_after / 3)
                    await self._claim_dead()
                s.up(True)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                s.up(False, e)
            await asyncio.sleep(BEAT)

    async def _beat(self) -> None:
        s = self.store
        answer = await s.script("heartbeat", [s.g, s.node, s.token, int(self.claim_after * 1000)])
        if answer == 3:  # our work is being taken over: drop it at once, start anew once it is done
            if not self.being_taken:
                self.being_taken = True
                self.fenced_at = time.monotonic()
                s.fenced()
            return
        if answer in (1, 2):
            self.last_renewal = time.monotonic()
            self.conflict = False
            if answer == 2:
                event(log, "heartbeat_lapsed", logging.WARNING, node=s.node)
            return
        if answer == -1:
            if not self.conflict:
                event(log, "node_name_conflict", logging.ERROR, node=s.node)
            self.conflict = True
            return
        # Our work went to another process while we could not reach Redis: drop it, start anew.
        self.fenced_at = time.monotonic()
        s.fenced()
        self.being_taken = False
        client = s.client
        await client.set(f"{s.g}node:{s.node}", s.token, px=int(self.claim_after * 1000))
        await client.sadd(f"{s.g}nodes", s.node)
        await s.ensure_inbox()
        self.last_renewal = time.monotonic()
        # what we stored while the claim went on, in partitions it had already passed, is still
        # ours: take it up again (the claim took the rest)
        records = await self.load(await self._open(s.node))
        unfinished = [r for r in records if r.state < 2]
        if unfinished:
            s.claimed(unfinished)
        # and so are the receipts owed here then: those we no longer hold go to their streams
        s.background(self._owed_not_held([r.id for r in records if r.state >= 2]))

    async def _owed_not_held(self, final: list[str]) -> None:
        """The final messages of our `open:` (their receipts owed here) that this process does
        not hold (it dropped them when it was fenced) to the feed's orphans. The changes lane's
        empty write goes after the read: once it is answered, every commit that ran before the
        read has had its answer (what it took is held)."""
        s = self.store
        try:
            await s.barrier()
        except Exception as e:
            log.warning("event=owed_receipts_unread error=%r", e)
            return
        held = {key[: -len("/final")] for key in s.feed.held if key.endswith("/final")}
        s.feed.orphans.update(i for i in final if i not in held)

    async def _open(self, node: str) -> list[str]:
        """The members of a process's `open:` set, in every partition."""
        s = self.store
        ids: list[str] = []
        for part in s.keys.parts:
            ids += [i.decode() for i in await s.client.smembers(f"{part}open:{node}")]
        return ids

    async def _claim_dead(self) -> None:
        s = self.store
        client = s.client
        names = {raw.decode() for raw in await client.smembers(f"{s.g}nodes")}
        names |= {raw.decode() for raw in await client.hkeys(f"{s.g}claims")}  # claims left unfinished
        for name in sorted(names):
            if name == s.node or await client.exists(f"{s.g}node:{name}"):
                continue
            ids = await self.claim(name)
            if ids is None:
                continue  # another process was first, or it came back
            records = await self.load(ids)
            unfinished = s.take_open(records)
            self.claimed += len(unfinished)
            event(log, "node_claimed", logging.WARNING, dead=name, node=s.node, messages=len(unfinished))
            if unfinished:
                s.claimed(unfinished)

    async def claim(self, name: str) -> list[str] | None:
        """Take over the work of the dead process `name`, partition by partition: the ids of
        its open messages, now ours (the unfinished ones, and the final ones whose receipts it
        owed without a stream entry); None if it is not dead or another process claims it."""
        s = self.store
        if not await s.script("claim_begin", [s.g, s.node, name]):
            return None
        ids: list[str] = []
        for p, part in enumerate(s.keys.parts):
            got = await s.script("claim", [part, s.node, name], [s.keys.route(p)])
            ids += [i.decode() for i in got]
        await s.script("claim_end", [s.g, name, s.node])
        return ids

    async def load(self, ids: list[str]) -> list[MessageRecord]:
        records: list[MessageRecord] = []
        client, keys = self.store.client, self.store.keys
        for i in range(0, len(ids), LOAD_CHUNK):
            pipe = client.pipeline(transaction=False)
            for mid in ids[i : i + LOAD_CHUNK]:
                pipe.hgetall(f"{keys.part(mid)}m:{mid}")
            for h in await pipe.execute():
                record = message_from_hash(h)
                if record is not None:
                    records.append(record)
        return records
