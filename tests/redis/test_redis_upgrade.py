"""Messages a store of the layout before `s` and `r` wrote (each changing column a field of its
own) are still found, finished, settled and kept or removed right by this one: a gateway upgraded
with messages in flight loses none of them and owes no receipt twice."""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_twisted
import redis

from smppgw.providers.base import ENROUTE, StatusReport
from smppgw.store.base import RECEIPT_DELIVERED, RECEIPT_OWED, AddOutbox, ReceiptDone, UpdateMessage
from smppgw.store.redis.codec import message_from_hash, packed
from tests.aio import aio
from tests.redis.kit import close, make_store, message, receipt, settled, until, write
from tests.redisd import prefix


@pytest.fixture
def keys(redis_server):
    return redis_server, prefix()


def store_before(r: redis.Redis, p: str, m, node: str) -> None:
    """The hash the store before wrote for `m`: its changing columns a field each (and no
    provider in `d`)."""
    r.hset(
        f"{p}m:{m.id}",
        mapping={
            "d": json.dumps(json.loads(packed(m))[:-1]), "node": node, "state": str(m.state),
            "provider": m.provider,
            "provider_id": m.provider_id, "err": m.err, "attempts": str(m.attempts),
            "done_at": "" if m.done_at is None else repr(m.done_at), "sent_at": "",
            "receipt": str(m.receipt),
        },
    )  # fmt: skip
    r.sadd(f"{p}open:{node}", m.id) if m.state < 2 else r.zadd(f"{p}done", {m.id: m.done_at})


@pytest_twisted.ensureDeferred
async def test_a_message_in_flight_at_upgrade_is_routed_finished_and_settled(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        a, sink_a = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        m = message(21, state=ENROUTE, provider="fly", provider_id="FLY-21", attempts=1)
        store_before(r, p, m, "a")
        assert message_from_hash(r.hgetall(f"{p}m:{m.id}")) == m

        # a report naming our id (no pid: key for it) finds it by its `provider` field
        b.route_report("fly", StatusReport("", 2, "DELIVERED", "000", None, m.id))
        await until(lambda: sink_a.forwarded)
        assert sink_a.forwarded[0][1].message_id == m.id

        m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED
        await write(a, [UpdateMessage(m), AddOutbox(receipt(m))])
        assert r.xlen(f"{p}rx:demo") == 1  # owed once: the state field said it was open
        await write(a, [UpdateMessage(m), AddOutbox(receipt(m))])  # a batch applied again
        assert r.xlen(f"{p}rx:demo") == 1
        assert message_from_hash(r.hgetall(f"{p}m:{m.id}")) == m

        await write(a, [ReceiptDone(m.id, RECEIPT_DELIVERED, 1600.0, "peer")])
        assert settled(r, f"{p}m:{m.id}") == (RECEIPT_DELIVERED, 1600.0, "peer")
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_receipt_owed_before_the_upgrade_settles_on_its_row_and_holds_retention(keys):
    async def body():
        url, p = keys
        r = redis.Redis.from_url(url)
        store, _ = make_store(url, p, "a")
        owed = message(31, state=2, provider="fly", provider_id="FLY-31", done_at=1500.0)
        owed.receipt = RECEIPT_OWED
        answered = message(32, state=2, provider="fly", provider_id="FLY-32", done_at=1500.0)
        answered.receipt = RECEIPT_DELIVERED
        store_before(r, p, owed, "a")
        store_before(r, p, answered, "a")

        async def purge(before, limit):
            fut = asyncio.get_event_loop().create_future()
            store.purge(before, limit, lambda n, more: fut.set_result((n, more)))
            return await fut

        assert await purge(9999.0, 10) == (1, False)  # the answered one; the owed one waits
        assert [r.exists(f"{p}m:{m.id}") for m in (owed, answered)] == [1, 0]

        # its settle is one new field on a row that is there: the row stays, and reads settled
        await write(store, [ReceiptDone(owed.id, RECEIPT_DELIVERED, 1600.0, "peer")])
        assert settled(r, f"{p}m:{owed.id}") == (RECEIPT_DELIVERED, 1600.0, "peer")
        r.zadd(f"{p}done", {owed.id: 1500.0})  # (purge moved it to the back of the set)
        assert await purge(9999.0, 10) == (1, False)
        assert not r.exists(f"{p}m:{owed.id}")
        await close(store)

    await aio(body())
