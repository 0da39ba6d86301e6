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
from collections.abc import Awaitable, Callable, Coroutine, Sequence
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
    Done,
    MessageRecord,
    Op,
    OutboxRecord,
    Slots,
    Snapshot,
    StoreSink,
    TrailDone,
    TrailEvent,
)
from smppgw.store.redis.codec import message_from_hash, report_json
from smppgw.store.redis.commit import Commits, _Part
from smppgw.store.redis.feed import BLOCK_MS, GROUP, Feed
from smppgw.store.redis.node import Lease, default_name, register
from smppgw.store.redis.scripts import Scripts
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
        self.node = config.node or default_name()
        self.token = secrets.token_hex(8)  # this process's heartbeat value
        self.max_per_account = receipts.max_per_account
        self.pid_ttl_ms = int((dispatch.status_horizon + 86400) * 1000)
        self.trail_ttl_ms = int((config.keep_final + dispatch.status_horizon + 86400) * 1000)
        self.max_batch = config.max_batch
        self.sink: StoreSink | None = None
        self._queue: deque[tuple[Sequence[Op], Done]] = deque()
        self._flush_due = False
        self._committing = False
        self._kept: deque[_Part] = deque()  # state changes written again until Redis takes them
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
        self.client = redis.asyncio.Redis.from_url(
            config.url, socket_timeout=5.0, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), **kw
        )
        self.reader = redis.asyncio.Redis.from_url(  # blocking reads: a connection of their own
            config.url, socket_timeout=BLOCK_MS / 1000 + 5.0, retry=Retry(ExponentialBackoff(), 0), **kw
        )
        self.scripts: Scripts | None = None

    # -- start and stop -------------------------------------------------------------------

    def open(self) -> Snapshot:
        """At start (blocking): check Redis, load the scripts, take this process's name, resume
        what a process of the same name left unfinished, reserve the first block of ids."""
        sync = redis.Redis.from_url(self.config.url, socket_connect_timeout=5.0, socket_timeout=10.0)
        try:
            version = str(sync.info("server").get("redis_version", "0"))
            if tuple(int(x) for x in version.split(".")[:2]) < MIN_VERSION:
                raise RuntimeError(f"Redis {version} is too old: smppgw needs 6.2 or newer")
            _check_policy(sync)
            self.scripts = Scripts.load_sync(sync)
            register(sync, self.prefix, self.node, self.token, self.config.claim_after)
            _ensure_group(sync, f"{self.prefix}inbox:{self.node}")
            ids = [i.decode() for i in sync.smembers(f"{self.prefix}open:{self.node}")]
            pipe = sync.pipeline(transaction=False)
            for mid in ids:
                pipe.hgetall(f"{self.prefix}m:{mid}")
            unfinished = [r for r in map(message_from_hash, pipe.execute() if ids else []) if r is not None]
            last = int(sync.incrby(f"{self.prefix}ids", ID_BLOCK))
        finally:
            sync.close()
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
        while (self._queue or self._committing or self._kept) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        loops = {self.lease.task, *self.feed.tasks}
        chores = self._tasks - loops  # records given back, binds released: let them land
        if chores:
            await asyncio.wait(chores, timeout=max(0.1, deadline - time.monotonic()))
        self._closed = True
        await self.lease.stop()
        await self.feed.stop()
        try:
            await self.client.delete(f"{self.prefix}node:{self.node}")
        except Exception as e:
            log.warning("event=store_close_failed error=%r", e)
        for c in (self.client, self.reader):
            await c.aclose()

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
        assert self.scripts is not None
        return await self.scripts.call(self.client, name, keys or [], args)

    async def ensure_inbox(self) -> None:
        try:
            await self.client.xgroup_create(f"{self.prefix}inbox:{self.node}", GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    # -- reads ----------------------------------------------------------------------------

    def get_message(self, message_id: str, done: Callable[[MessageRecord | None], None]) -> None:
        async def read() -> None:
            try:
                record = message_from_hash(await self.client.hgetall(f"{self.prefix}m:{message_id}"))
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
                pipe.hgetall(f"{self.prefix}m:{message_id}")
                pipe.lrange(f"{self.prefix}ev:{message_id}", 0, -1)
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
            try:
                n, seen = map(int, await self.script("purge", [self.prefix, repr(before), limit]))
            except Exception as e:
                log.error("event=store_purge_failed error=%r", e)
                done(0, False)
                return
            self.purged += n
            done(n, seen >= limit)

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
        args = [self.prefix, self.node, provider, report.provider_id, report.message_id or ""]
        args += [report_json(provider, report), EARLY_TTL_MS]
        self._later("report_route", self.script("route", args), self._routed)

    def _routed(self, where: Any) -> None:
        if where == b"sent":
            self.forwarded_out += 1

    def reserve_ids(self, count: int, done: Callable[[int | None], None]) -> None:
        def reserved(last: Any) -> None:
            done(None if last is None else int(last) - count + 1)

        self._later("id_block", self.client.incrby(f"{self.prefix}ids", count), reserved)

    def bind(self, account: str, member: str, limit: int, done: Callable[[bool | None], None]) -> None:
        who = f"{self.node}/{member}"
        counted = self.script("bind", [self.prefix, account, who, limit, self.node])
        self._later("bind_count", counted, lambda ok: done(None if ok is None else bool(ok)))

    def unbind(self, account: str, member: str) -> None:
        # if it fails, the bind stops counting once this process's heartbeat ends
        self._later("unbind", self.client.hdel(f"{self.prefix}binds:{account}", f"{self.node}/{member}"))

    def bucket(self, name: str, rate: float, burst: float, now: float) -> Bucket:
        b = self._buckets.get(name)
        if b is None or b.rate != rate or b.burst != burst:
            b = self._buckets[name] = LeasedBucket(name, rate, burst, self._bucket_call)
        return b

    async def _bucket_call(self, args: list[Any]) -> Any:
        return await self.script("bucket", [self.prefix, *args])

    def slots(self, name: str, limit: int, wake: Callable[[], None]) -> Slots | None:
        s = self._slots.get(name)
        if s is None:
            s = self._slots[name] = SharedSlots(name, limit, wake, self._slots_call)
        s.limit, s.wake = limit, wake
        return s

    async def _slots_call(self, args: list[Any]) -> Any:
        return await self.script("slots", [self.prefix, *args, self.node])

    # -- what node.py and feed.py hand on to the gateway ----------------------------------------

    def claimed(self, records: list[MessageRecord]) -> None:
        if self.sink is not None:
            self.sink.claimed(records)

    def fenced(self) -> None:
        self.feed.held.clear()
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
