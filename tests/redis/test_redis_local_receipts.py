"""A receipt committed by a process with a receiver of its account (room for it) goes to that
receiver with the commit itself, handed over as the record the process already has. A final
receipt taken so has no stream entry: its message stays in `open:<node>` until it is settled,
given back, or (its process gone) rebuilt from its message by the process that takes over. The
feed's read loops are not started here, so nothing else can deliver."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_twisted
import redis

from smppgw.gateway.receipts import final_receipt
from smppgw.store.base import (
    RECEIPT_DELIVERED,
    RECEIPT_OWED,
    AddOutbox,
    InsertMessage,
    ReceiptDone,
    UpdateMessage,
)
from smppgw.store.redis.batch import Part
from smppgw.store.redis.codec import record_from_entry
from tests.aio import aio
from tests.redis.kit import _Adapter, close, make_store, message, receipt, settled, until, write
from tests.redisd import prefix


@pytest.fixture
def keys(redis_server):
    return redis_server, prefix()


def final(i: int):
    m = message(i, state=2, provider="sim", provider_id=f"p{i}", done_at=1500.0)
    m.receipt = RECEIPT_OWED
    return m


def quiet_store(url: str, p: str, node: str):
    """A store whose sink is attached but whose loops (feed reads, heartbeat) do not run."""
    store, sink = make_store(url, p, node, attach=False)
    store.sink = _Adapter(sink)
    return store, sink


def owed(r: redis.Redis, p: str, node: str) -> set[str]:
    """The final messages in the process's open set: their receipts owed to it, without an entry."""
    ids = [i.decode() for i in r.smembers(f"{p}open:{node}")]
    return {i for i in ids if int(r.hget(f"{p}m:{i}", "state") or 0) >= 2}


def entries(r: redis.Redis, stream: str):
    return [record_from_entry(fields) for _, fields in r.xrange(stream)]


def pending(r: redis.Redis, stream: str) -> dict[str, int]:
    info = r.xpending(stream, "gw")
    return {c["name"].decode(): c["pending"] for c in info["consumers"]}


@pytest_twisted.ensureDeferred
async def test_a_final_receipt_for_a_receiver_here_is_handed_over_by_its_commit_without_an_entry(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        store.want_receipts("demo", 5)
        m = message(1)
        assert await write(store, [InsertMessage(m)]) is None
        m = final(1)
        out = receipt(m)
        assert await write(store, [UpdateMessage(m), AddOutbox(out)]) is None
        assert sink.delivered == [out]  # the record itself, right after its commit
        assert owed(r, p, "n1") == {m.id} and not r.exists(f"{p}rx:demo")
        assert r.hget(f"{p}m:{m.id}", "r") == b"1"  # owed, so retention keeps it
        assert store.feed.rooms["demo"] == 4
        await write(store, [ReceiptDone(m.id, RECEIPT_DELIVERED, 1600.0, "127.0.0.1:4000")])
        assert owed(r, p, "n1") == set()
        assert settled(r, f"{p}m:{m.id}") == (RECEIPT_DELIVERED, 1600.0, "127.0.0.1:4000")
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_commit_takes_no_more_than_the_room_and_leaves_the_rest_to_any_reader(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        ms = [message(i) for i in range(1, 4)]
        assert await write(store, [InsertMessage(m) for m in ms]) is None
        store.want_receipts("demo", 2)
        finals = [final(i) for i in range(1, 4)]
        ops = [op for m in finals for op in (UpdateMessage(m), AddOutbox(receipt(m)))]
        assert await write(store, ops) is None
        assert [o.message_id for o in sink.delivered] == [finals[0].id, finals[1].id]
        assert owed(r, p, "n1") == {finals[0].id, finals[1].id}
        assert r.xlen(f"{p}rx:demo") == 1 and pending(r, f"{p}rx:demo") == {}
        # the third is new for the group: the next read (here or in another process) gets it
        got = r.xreadgroup("gw", "n2", {f"{p}rx:demo": ">"}, count=10)
        assert [record_from_entry(f).message_id for _, f in got[0][1]] == [finals[2].id]
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_receipt_waiting_before_goes_first_read_from_its_entry(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        assert await write(store, [InsertMessage(message(1)), InsertMessage(message(2))]) is None
        first, second = final(1), final(2)
        # no receiver here yet: the first waits in the stream
        assert await write(store, [UpdateMessage(first), AddOutbox(receipt(first))]) is None
        assert sink.delivered == [] and owed(r, p, "n1") == set()
        store.want_receipts("demo", 1)
        assert await write(store, [UpdateMessage(second), AddOutbox(receipt(second))]) is None
        assert len(sink.delivered) == 1
        got = sink.delivered[0]
        assert got == receipt(first)  # read back from its entry, as it was written
        # the room went to the first. The second was sent without its entry (there was room when
        # it was encoded): owed here all the same, the process gives it back to the stream
        await until(lambda: r.xlen(f"{p}rx:demo") == 2)
        assert pending(r, f"{p}rx:demo") == {"n1": 1} and owed(r, p, "n1") == set()
        assert entries(r, f"{p}rx:demo")[1] == receipt(second)
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_without_a_receiver_here_a_commit_takes_nothing(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        store.want_receipts("other", 5)  # a receiver of another account
        assert await write(store, [InsertMessage(message(1))]) is None
        m = final(1)
        assert await write(store, [UpdateMessage(m), AddOutbox(receipt(m))]) is None
        assert sink.delivered == [] and owed(r, p, "n1") == set()
        assert r.xlen(f"{p}rx:demo") == 1 and pending(r, f"{p}rx:demo") == {}
        await close(store)

    await aio(body())


async def lost_answer(store, ops) -> None:
    """The batch applied by Redis, its answer never handled (as when the connection broke)."""
    part = Part([(ops, lambda error: None)], store.feed.held, store.keys)
    result = await store._apply(part)
    assert not isinstance(result, Exception)


@pytest_twisted.ensureDeferred
async def test_a_batch_applied_again_after_its_answer_was_lost_hands_the_receipt_once(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        assert await write(store, [InsertMessage(message(1))]) is None
        store.want_receipts("demo", 5)
        m = final(1)
        ops = [UpdateMessage(m), AddOutbox(receipt(m))]
        await lost_answer(store, ops)
        assert sink.delivered == [] and owed(r, p, "n1") == {m.id}
        assert await write(store, ops) is None  # the same writes again
        assert sink.delivered == [receipt(m)]
        assert owed(r, p, "n1") == {m.id} and not r.exists(f"{p}rx:demo")
        await write(store, [ReceiptDone(m.id, RECEIPT_DELIVERED, 1600.0, "x")])
        assert r.get(f"{p}dn:{m.id}") == f",{m.id},{m.id}".encode()  # retention's entry, twice
        fut = asyncio.get_running_loop().create_future()
        store.purge(time.time() + 1, 10, lambda n, more: fut.set_result(n))
        assert await fut == 1 and not r.exists(f"{p}m:{m.id}", f"{p}dn:{m.id}")  # counted once
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_batch_applied_again_without_room_now_puts_the_receipt_in_the_stream(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        assert await write(store, [InsertMessage(message(1))]) is None
        store.want_receipts("demo", 5)
        m = final(1)
        ops = [UpdateMessage(m), AddOutbox(receipt(m))]
        await lost_answer(store, ops)
        store.want_receipts("demo", 0)  # the receiver went meanwhile
        assert await write(store, ops) is None
        assert sink.delivered == [] and owed(r, p, "n1") == set()
        assert entries(r, f"{p}rx:demo") == [receipt(m)]
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_receipt_owed_here_given_back_goes_to_the_stream(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, sink = quiet_store(url, p, "n1")
        assert await write(store, [InsertMessage(message(1))]) is None
        store.want_receipts("demo", 5)
        m = final(1)
        assert await write(store, [UpdateMessage(m), AddOutbox(receipt(m))]) is None
        assert owed(r, p, "n1") == {m.id}
        store.want_receipts("demo", 0)
        await store.feed.give_back(sink.delivered)
        assert owed(r, p, "n1") == set() and store.feed.held == {}
        assert entries(r, f"{p}rx:demo") == [receipt(m)]
        assert pending(r, f"{p}rx:demo") == {}  # for any reader
        await store.feed.give_back(sink.delivered)  # again: nothing more
        assert r.xlen(f"{p}rx:demo") == 1
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_the_receipts_a_dead_process_owed_are_rebuilt_into_the_stream_by_its_taker_over(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        a, sink_a = quiet_store(url, p, "a")
        b, _ = quiet_store(url, p, "b")
        ms = [message(i) for i in (1, 2, 3)]
        assert await write(a, [InsertMessage(m) for m in ms]) is None
        a.want_receipts("demo", 5)
        finals = [final(i) for i in (1, 2)]
        ops = [op for m in finals for op in (UpdateMessage(m), AddOutbox(receipt(m)))]
        assert await write(a, ops) is None
        await write(a, [ReceiptDone(finals[1].id, RECEIPT_DELIVERED, 1600.0, "x")])  # one settled
        assert owed(r, p, "a") == {finals[0].id}
        r.delete(f"{p}node:a")  # a died (kill -9: nothing of it runs)
        ids = await b.lease.claim("a")  # its open messages: the unfinished one, the owed receipt's
        assert sorted(ids) == [ms[0].id, ms[2].id]
        assert [x.id for x in b.take_open(await b.lease.load(ids))] == [ms[2].id]
        assert b.feed.orphans == {finals[0].id}
        assert owed(r, p, "a") == set() and owed(r, p, "b") == {finals[0].id}
        await b.feed.requeue_orphans()
        assert owed(r, p, "b") == set() and not b.feed.orphans
        assert entries(r, f"{p}rx:demo") == [final_receipt(finals[0])]
        assert entries(r, f"{p}rx:demo")[0].short_message == receipt(finals[0]).short_message
        await b.feed.requeue_orphans()  # nothing twice
        assert r.xlen(f"{p}rx:demo") == 1
        await close(b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_the_receipts_a_process_owed_when_it_stopped_go_to_the_stream_when_it_starts_again(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        a, _ = quiet_store(url, p, "a")
        assert await write(a, [InsertMessage(message(1)), InsertMessage(message(2))]) is None
        a.want_receipts("demo", 5)
        m = final(1)
        assert await write(a, [UpdateMessage(m), AddOutbox(receipt(m))]) is None
        r.delete(f"{p}node:a")  # stopped without a word
        again, _ = quiet_store(url, p, "a")  # the same name: its own work comes back to it
        assert again.feed.orphans == {m.id}
        assert [x.id for x in again.snapshot.unfinished] == [message(2).id]
        await again.feed.requeue_orphans()
        assert owed(r, p, "a") == set()
        assert entries(r, f"{p}rx:demo") == [final_receipt(m)]
        await close(again)
        for c in (a.client, a.reader):  # (not a's close: it would end the heartbeat of `again`)
            await c.aclose()

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_an_orphan_whose_message_is_gone_or_settled_is_only_forgotten(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        a, _ = quiet_store(url, p, "a")
        assert await write(a, [InsertMessage(message(1)), InsertMessage(message(2))]) is None
        a.want_receipts("demo", 5)
        ms = [final(1), final(2)]
        ops = [op for m in ms for op in (UpdateMessage(m), AddOutbox(receipt(m)))]
        assert await write(a, ops) is None
        r.delete(f"{p}m:{ms[0].id}")  # removed (by an operator)
        r.hset(f"{p}m:{ms[1].id}", "r", '[2,1600.0,"x"]')  # settled by a write we did not see
        a.feed.orphans.update(m.id for m in ms)
        await a.feed.requeue_orphans()
        assert owed(r, p, "a") == set() and not r.exists(f"{p}rx:demo")
        await close(a)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_receipts_owed_in_the_layout_before_s_owed_set_are_taken_at_start_and_by_a_taker_over(keys):
    """The layout before kept the final messages whose receipts a process owed without an entry
    in `owed:<node>`, apart from `open:<node>`: a restart under that name and a taker-over read
    it as part of the open set."""

    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        a, _ = quiet_store(url, p, "a")
        assert await write(a, [InsertMessage(message(i)) for i in (1, 2)]) is None
        a.want_receipts("demo", 5)
        ms = [final(1), final(2)]
        assert await write(a, [op for m in ms for op in (UpdateMessage(m), AddOutbox(receipt(m)))]) is None
        r.srem(f"{p}open:a", *[m.id for m in ms])  # as the store before left them
        r.sadd(f"{p}owed:a", *[m.id for m in ms])
        r.delete(f"{p}node:a")  # stopped without a word
        again, _ = quiet_store(url, p, "a")
        assert again.feed.orphans == {ms[0].id, ms[1].id} and not again.snapshot.unfinished
        assert not r.exists(f"{p}owed:a") and owed(r, p, "a") == {ms[0].id, ms[1].id}
        r.srem(f"{p}open:a", ms[1].id)
        r.sadd(f"{p}owed:a", ms[1].id)  # one left in the set before, one in the open set
        r.delete(f"{p}node:a")
        b, _ = quiet_store(url, p, "b")
        ids = await b.lease.claim("a")
        assert sorted(ids) == [ms[0].id, ms[1].id] and b.take_open(await b.lease.load(ids)) == []
        assert not r.exists(f"{p}owed:a", f"{p}open:a") and b.feed.orphans == {ms[0].id, ms[1].id}
        await b.feed.requeue_orphans()
        assert sorted(e.message_id for e in entries(r, f"{p}rx:demo")) == [ms[0].id, ms[1].id]
        assert owed(r, p, "b") == set()
        await close(b)
        for c in (a.client, a.reader, again.client, again.reader):
            await c.aclose()

    await aio(body())
