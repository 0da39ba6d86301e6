"""A receipt committed by a process with a receiver of its account (room for it) goes to that
receiver with the commit itself: pending for the process in the account's stream, as if its
blocking read had read it, and handed over as the record the process already has. The feed's
read loops are not started here, so nothing else can deliver."""

from __future__ import annotations

import pytest
import pytest_twisted
import redis

from smppgw.store.base import (
    RECEIPT_DELIVERED,
    RECEIPT_OWED,
    AddOutbox,
    InsertMessage,
    ReceiptDone,
    UpdateMessage,
)
from tests.aio import aio
from tests.redis.kit import _Adapter, close, make_store, message, receipt, write
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


def pending(r: redis.Redis, stream: str) -> dict[str, int]:
    info = r.xpending(stream, "gw")
    return {c["name"].decode(): c["pending"] for c in info["consumers"]}


@pytest_twisted.ensureDeferred
async def test_a_receipt_for_a_receiver_here_is_handed_over_by_its_commit(keys):
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
        assert pending(r, f"{p}rx:demo") == {"n1": 1}
        assert store.feed.rooms["demo"] == 4
        await write(store, [ReceiptDone(m.id, RECEIPT_DELIVERED, 1600.0, "127.0.0.1:4000")])
        assert r.xlen(f"{p}rx:demo") == 0 and pending(r, f"{p}rx:demo") == {}
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
        assert r.xlen(f"{p}rx:demo") == 3 and pending(r, f"{p}rx:demo") == {"n1": 2}
        # the third is new for the group: the next read (here or in another process) gets it
        got = r.xreadgroup("gw", "n2", {f"{p}rx:demo": ">"}, count=10)
        assert len(got[0][1]) == 1
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
        assert sink.delivered == []
        store.want_receipts("demo", 1)
        assert await write(store, [UpdateMessage(second), AddOutbox(receipt(second))]) is None
        assert len(sink.delivered) == 1
        got = sink.delivered[0]
        assert got == receipt(first)  # read back from its entry, as it was written
        assert r.xlen(f"{p}rx:demo") == 2 and pending(r, f"{p}rx:demo") == {"n1": 1}
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
        assert sink.delivered == []
        assert r.xlen(f"{p}rx:demo") == 1 and pending(r, f"{p}rx:demo") == {}
        await close(store)

    await aio(body())
