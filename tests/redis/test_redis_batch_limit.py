"""A batch cut at `max_batch` must not separate a record's writes: an update is encoded with the
record's columns as they are when the batch goes out, so its later writes still queued (the final
state's receipt) go out with it. Found by `./scripts/bench S1 --store redis` (800 submits in
flight, receipts missing and `not_owner` warnings for the process's own messages)."""

from __future__ import annotations

import pytest
import pytest_twisted
import redis

from smppgw.providers.base import ENROUTE
from smppgw.store.base import RECEIPT_OWED, AddOutbox, InsertMessage, UpdateMessage
from tests.aio import aio
from tests.redis.kit import close, make_store, message, receipt, until, write
from tests.redisd import prefix


@pytest.fixture
def keys(redis_server):
    return redis_server, prefix()


@pytest_twisted.ensureDeferred
async def test_a_final_state_queued_behind_the_batch_limit_keeps_its_receipt(keys):
    async def body():
        url, p = keys
        store, sink = make_store(url, p, "n1")
        m, other = message(1), message(2)
        assert await write(store, [InsertMessage(m), InsertMessage(other)]) is None
        store.max_batch = 1  # every batch is cut after its first write
        answers: list[BaseException | None] = []
        m.state, m.provider, m.provider_id = ENROUTE, "sim", "p1"
        store.write([UpdateMessage(m)], answers.append)  # the send answer
        other.state = ENROUTE
        store.write([UpdateMessage(other)], answers.append)
        m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED  # its final report, same loop turn
        store.write([UpdateMessage(m), AddOutbox(receipt(m))], answers.append)
        await until(lambda: len(answers) == 3)
        assert answers == [None, None, None]
        assert redis.Redis.from_url(url).xlen(f"{p}rx:demo") == 1
        store.want_receipts("demo", 10)
        await until(lambda: sink.delivered)
        assert [r.message_id for r in sink.delivered] == [m.id]
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_long_queue_cut_many_times_keeps_every_receipt_once(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1")
        ms = [message(i) for i in range(1, 31)]
        assert await write(store, [InsertMessage(m) for m in ms]) is None
        store.max_batch = 2
        answers: list[BaseException | None] = []
        for m in ms:  # every send answer, then every final report: the queue is cut 30 times
            m.state, m.provider, m.provider_id = ENROUTE, "sim", f"p{m.id}"
            store.write([UpdateMessage(m)], answers.append)
        for m in reversed(ms):  # (the last sent is the first final: followers far down the queue)
            m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED
            store.write([UpdateMessage(m), AddOutbox(receipt(m))], answers.append)
        await until(lambda: len(answers) == 60)
        assert answers == [None] * 60
        r = redis.Redis.from_url(url)
        entries = r.xrange(f"{p}rx:demo")
        assert len(entries) == 30
        assert store._changes.updating == {}  # every queued update was counted out again
        await close(store)

    await aio(body())
