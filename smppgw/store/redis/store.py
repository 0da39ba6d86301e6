"""Redis store: several gateway processes, on one machine or several, share one Redis.

Writes are grouped as in the SQLite store: everything `write` gets in one loop turn goes to
Redis in one round trip of the COMMIT script, the next batch gathering while one is in flight
(`commit.py`, which also says what happens while Redis is away). The layout of the keys is in
`scripts.py`; taking over a dead process's work in `node.py`; deliver_sm for receivers in other
processes in `feed.py`; shared limits in `shared.py`. This module holds the store's state, its
start and stop, reads, and the calls of the seam that several processes share.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ResponseError,
)

from smppgw.aio import as_deferred, start
from smppgw.config import DispatchConfig, ReceiptConfig, StoreConfig
from smppgw.logs import event
from smppgw.providers.base import StatusReport
from smppgw.store.base import (
    Bucket,
    MessageRecord,
    OutboxRecord,
    Slots,
    Snapshot,
    StoreSink,
    TrailDone,
    TrailEvent,
)
from smppgw.store.redis.batch import Lane, Part
from smppgw.store.redis.codec import message_from_hash, pid_field, report_json
from smppgw.store.redis.commit import Commits
from smppgw.store.redis.feed import BLOCK_MS, GROUP, Feed
from smppgw.store.redis.keys import Keys
from smppgw.store.redis.node import Lease, default_name, register
from smppgw.store.redis.scripts import Scripts
from smppgw.store.redis.shards import Shards, plain_url
from smppgw.store.redis.shared import LeasedBucket, SharedSlots

log = logging.getLogger("smppgw.store.redis")
T = TypeVar("T")

MIN_VERSION = (6, 2)  # XAUTOCLAIM, GETDEL, XPENDING with IDLE
EARLY_TTL_MS = 120_000
ID_BLOCK = 10_000


class RedisStore(Commits):
    shared = True

    def __init__(self, config: StoreConfig, receipts: ReceiptConfig, dispatch: DispatchConfig) -> None:
        self.config = config
        self.prefix = config.key_prefix
        self.keys = Keys(config.key_prefix, config.partitions if config.cluster else 1)
        self.g = self.keys.shared  # prefix of what the processes coordinate
        self.node = config.node or default_name()
        self.token = secrets.token_hex(8)  # this process's heartbeat value
        self.max_per_account = receipts.max_per_account
        self.pid_ttl_ms = int((dispatch.status_horizon + 86400) * 1000)
        self.trail_ttl_ms = int((config.keep_final + dispatch.status_horizon + 86400) * 1000)
        self.max_batch = config.max_batch
        self.sink: StoreSink | None = None
        self._new, self._changes = Lane(), Lane()  # the commit lanes (commit.py)
        self._kept: deque[Part] = deque()  # state changes written again until Redis takes them
        self.indexed: set[str] = set()  # messages whose pid: key may be written (codec.encode_ops)
        self._compensate: list[str] = []  # ids a failed batch may have stored: delete them
        self._up = True
        self._down_since: float | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._buckets: dict[str, LeasedBucket] = {}
        self._slots: dict[str, SharedSlots] = {}
        self.lease = Lease(self, config.claim_after)
        self.feed = Feed(self, receipts.max_age, config.claim_after)
        self.batches = 0
        self.ops_written = 0
        self.purged = 0
        self.forwarded_out = 0  # reports this process passed on to the owner of their message
        kw: dict[str, Any] = {"socket_connect_timeout": 2.0, "health_check_interval": 10}
        url = plain_url(config.url)
        kind: Any = redis.asyncio.RedisCluster if config.cluster else redis.asyncio.Redis
        self.client = kind.from_url(
            url, socket_timeout=5.0, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), **kw
        )
        self.reader = kind.from_url(  # blocking reads: connections of their own
            url, socket_timeout=BLOCK_MS / 1000 + 5.0, retry=Retry(ExponentialBackoff(), 0), **kw
        )
        # where each commit call and blocking read goes
        self.shards = Shards(self.client, self.reader, url, config.cluster, kw, BLOCK_MS / 1000 + 5.0)
        self.scripts: Scripts | None = None

    # -- start and stop -------------------------------------------------------------------

    def open(self) -> Snapshot:
        """At start (blocking): check Redis, load the scripts, take this process's name, resume
        what a process of the same name left unfinished, reserve the first block of ids."""
        url, cluster = plain_url(self.config.url), self.config.cluster
        kind: Any = redis.RedisCluster if cluster else redis.Redis
        sync = kind.from_url(url, socket_connect_timeout=5.0, socket_timeout=10.0)
        try:
            for server in sync.get_primaries() if cluster else [sync]:
                one = server.redis_connection if cluster else server
                version = str(one.info("server").get("redis_version", "0"))
                if tuple(int(x) for x in version.split(".")[:2]) < MIN_VERSION:
                    raise RuntimeError(f"Redis {version} is too old: smppgw needs 6.2 or newer")
                _check_policy(one)
            self.scripts = Scripts.load_sync(sync)
            register(sync, self.g, self.node, self.token, self.config.claim_after)
            ids: set[str] = set()
            for part in self.keys.parts:
                _ensure_group(sync, f"{part}inbox:{self.node}")
                mine, before = f"{part}open:{self.node}", f"{part}owed:{self.node}"
                if sync.exists(before):  # (the layout before kept the receipts owed here apart)
                    sync.sunionstore(mine, [mine, before])
                    sync.delete(before)
                ids.update(i.decode() for i in sync.smembers(mine))
            pipe = sync.pipeline(transaction=False)
            for mid in ids:
                pipe.hgetall(f"{self.keys.part(mid)}m:{mid}")
            records = [r for r in map(message_from_hash, pipe.execute() if ids else []) if r is not None]
            unfinished = self.take_open(records)
            last = int(sync.incrby(f"{self.g}ids", ID_BLOCK))
        finally:
            sync.close()
        self._resumed(unfinished)
        where, resumed = self.config.where, len(unfinished)
        event(log, "store_opened", store="redis", url=where, node=self.node, resumed=resumed)
        return Snapshot(unfinished, [], last - ID_BLOCK + 1, [], id_limit=last + 1)

    def attach(self, sink: StoreSink) -> None:
        self.sink = sink
        self.lease.start(self.background)
        self.feed.start()

    def close(self) -> Any:
        return as_deferred(self._close())

    async def _close(self, grace: float = 5.0) -> None:
        """Finish the writes under way, stop the loops, and end the heartbeat so that another
        process takes over at once what is still unfinished here."""
        deadline = time.monotonic() + grace
        while not self.settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        loops = {self.lease.task, *self.feed.tasks}
        chores = self._tasks - loops  # records given back, binds released: let them land
        if chores:
            await asyncio.wait(chores, timeout=max(0.1, deadline - time.monotonic()))
        self._closed = True
        await self.lease.stop()
        await self.feed.stop()
        try:
            await self.client.delete(f"{self.g}node:{self.node}")
        except Exception as e:
            log.warning("event=store_close_failed error=%r", e)
        for c in (self.client, self.reader):
            await c.aclose()
        await self.shards.close()

    def healthy(self) -> bool:
        return self._up and not self._closed and not self.lease.conflict

    def may_send(self) -> bool:
        return self.lease.may_send()

    def up(self, ok: bool, error: BaseException | None = None) -> None:
        """Redis answered (or not): /healthz and one log line per outage."""
        if ok and not self._up:
            down = round(time.monotonic() - (self._down_since or 0), 1)
            event(log, "store_reachable", store="redis", down_for=down)
            self._down_since = None
        elif not ok and self._up:
            self._down_since = time.monotonic()
            event(log, "store_unreachable", logging.ERROR, store="redis", error=repr(error))
        self._up = ok

    def background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = start(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def script(self, name: str, args: list[Any], keys: list[Any] | None = None) -> Any:
        """Run a script of the shared slot, or of the slot of `keys[0]` (a cluster runs a script
        where its first key lives)."""
        assert self.scripts is not None
        return await self.scripts.call(self.client, name, keys or [self.keys.shared_route], args)

    async def barrier(self) -> None:
        """Until the state changes written before it have been committed and answered."""
        fut: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.write([], lambda error: None if fut.done() else fut.set_result(error))
        await fut

    async def ensure_inbox(self) -> None:
        for part in self.keys.parts:
            try:
                await self.client.xgroup_create(f"{part}inbox:{self.node}", GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    # -- reads ----------------------------------------------------------------------------

    def get_message(self, message_id: str, done: Callable[[MessageRecord | None], None]) -> None:
        async def read() -> None:
            try:
                key = f"{self.keys.part(message_id)}m:{message_id}"
                record = message_from_hash(await self.client.hgetall(key))
            except Exception as e:
                log.error("event=store_read_failed what=get error=%r", e)
                record = None
            done(record)

        start(read())

    def get_trail(self, message_id: str, done: TrailDone) -> None:
        async def read() -> None:
            import json

            try:
                pipe = self.client.pipeline(transaction=False)
                part = self.keys.part(message_id)
                pipe.hgetall(f"{part}m:{message_id}")
                pipe.lrange(f"{part}ev:{message_id}", 0, -1)
                h, raw = await pipe.execute()
                record = message_from_hash(h)
                events = [TrailEvent(e["at"], e["event"], e["detail"]) for e in map(json.loads, raw)]
            except Exception as e:
                log.error("event=store_read_failed what=trail error=%r", e)
                record, events = None, []
            done(record, events if record is not None else [])

        start(read())

    def purge(self, before: float, limit: int, done: Callable[[int, bool], None]) -> None:
        async def run() -> None:
            n, full = 0, False
            try:
                for p, part in enumerate(self.keys.parts):
                    route = [self.keys.route(p)]
                    removed, seen = map(int, await self.script("purge", [part, repr(before), limit], route))
                    n, full = n + removed, full or seen >= limit
            except Exception as e:
                log.error("event=store_purge_failed error=%r", e)
                self.purged += n
                done(n, False)
                return
            self.purged += n
            done(n, full)

        start(run())

    # -- what the processes share -----------------------------------------------------------

    def want_receipts(self, account: str, room: int) -> None:
        self.feed.want(account, room)

    def _later(self, what: str, work: Awaitable[T], done: Callable[[T | None], None] | None = None) -> None:
        """Run `work` in the background; `done` gets its result, or None when Redis failed it
        (logged as `<what>_failed`)."""

        async def run() -> None:
            try:
                result: T | None = await work
            except Exception as e:
                log.warning("event=%s_failed error=%r", what, e)
                result = None
            if done is not None:
                done(result)

        self.background(run())

    def give_back(self, records: list[OutboxRecord]) -> None:
        self.background(self.feed.give_back(records))  # if it fails: taken over once idle

    def route_report(self, provider: str, report: StatusReport) -> None:
        self._later("report_route", self._route(provider, report), self._routed)

    async def _route(self, provider: str, report: StatusReport) -> Any:
        """The ROUTE script where the message lives: the partition of the id the report names;
        with none, or not found there, every partition (its provider-id key is in one of them;
        each keeps the report as early if it has not, so a send answer landing meanwhile finds
        it in its own)."""
        keys, mid, body = self.keys, report.message_id or "", report_json(provider, report)
        first = keys.of(mid) if mid else None
        order = ([first] if first is not None else []) + [p for p in range(keys.count) if p != first]
        where: Any = b"early"
        for p in order:
            args = [keys.parts[p], self.node, provider, report.provider_id, mid if p == first else ""]
            where = await self.script("route", [*args, body, EARLY_TTL_MS], [keys.route(p)])
            if where != b"early":
                break
        return where

    def _routed(self, where: Any) -> None:
        if where == b"sent":
            self.forwarded_out += 1

    def reserve_ids(self, count: int, done: Callable[[int | None], None]) -> None:
        def reserved(last: Any) -> None:
            done(None if last is None else int(last) - count + 1)

        self._later("id_block", self.client.incrby(f"{self.g}ids", count), reserved)

    def bind(self, account: str, member: str, limit: int, done: Callable[[bool | None], None]) -> None:
        who = f"{self.node}/{member}"
        counted = self.script("bind", [self.g, account, who, limit, self.node])
        self._later("bind_count", counted, lambda ok: done(None if ok is None else bool(ok)))

    def unbind(self, account: str, member: str) -> None:
        # if it fails, the bind stops counting once this process's heartbeat ends
        self._later("unbind", self.client.hdel(f"{self.g}binds:{account}", f"{self.node}/{member}"))

    def bucket(self, name: str, rate: float, burst: float, now: float) -> Bucket:
        b = self._buckets.get(name)
        if b is None or b.rate != rate or b.burst != burst:
            b = self._buckets[name] = LeasedBucket(name, rate, burst, self._bucket_call)
        return b

    async def _bucket_call(self, args: list[Any]) -> Any:
        return await self.script("bucket", [self.g, *args])

    def slots(self, name: str, limit: int, wake: Callable[[], None]) -> Slots | None:
        s = self._slots.get(name)
        if s is None:
            s = self._slots[name] = SharedSlots(name, limit, wake, self._slots_call)
        s.limit, s.wake = limit, wake
        return s

    async def _slots_call(self, args: list[Any]) -> Any:
        return await self.script("slots", [self.g, *args, self.node])

    # -- what node.py and feed.py hand on to the gateway ----------------------------------------

    def take_open(self, records: list[MessageRecord]) -> list[MessageRecord]:
        """The messages of an `open:` set this process took (its own at start, a dead process's):
        the unfinished ones, to carry on; the final ones (their receipts owed without a stream
        entry) go to their streams once the gateway is attached (`Feed.requeue_orphans`, which
        rebuilds each from its message)."""
        self.feed.orphans.update(r.id for r in records if r.state >= 2)
        return [r for r in records if r.state < 2]

    def claimed(self, records: list[MessageRecord]) -> None:
        self._resumed(records)
        if self.sink is not None:
            self.sink.claimed(records)

    def _resumed(self, records: list[MessageRecord]) -> None:
        """Unfinished messages this process carries on (after a restart, or taken over): the pid:
        key of one that has a provider id may be written."""
        self.indexed.update(r.id for r in records if pid_field(r))

    def fenced(self) -> None:
        self.feed.held.clear()
        self.indexed.clear()
        if self.sink is not None:
            self.sink.fenced()


def _check_policy(sync: Any) -> None:
    """Redis must never evict our keys to make room: say so at start if it may."""
    try:
        policy = sync.config_get("maxmemory-policy").get("maxmemory-policy", "noeviction")
    except redis.exceptions.ResponseError:
        return  # CONFIG renamed or refused (managed Redis): nothing to check
    if policy != "noeviction":
        event(log, "redis_may_evict", logging.WARNING, maxmemory_policy=policy,
              advice="set maxmemory-policy noeviction: an evicted message or receipt is lost")  # fmt: skip


def _ensure_group(sync: Any, stream: str) -> None:
    try:
        sync.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
