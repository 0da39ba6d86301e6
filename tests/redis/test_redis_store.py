"""The Redis store against a real redis-server: group commit, records and trail, receipts that
reach the process holding a receiver, once; ownership of messages, take-over of a dead process's
work, forwarded and early reports, shared bind counts, buckets, slots and ids, retention."""

from __future__ import annotations

import time

import pytest
import pytest_twisted
import redis

from smppgw.providers.base import ENROUTE, StatusReport
from smppgw.store.base import (
    RECEIPT_DELIVERED,
    RECEIPT_OWED,
    AddEvent,
    AddOutbox,
    InsertMessage,
    ReceiptDone,
    TrailEvent,
    UpdateMessage,
)
from smppgw.store.redis.batch import Part
from smppgw.store.redis.codec import record_from_entry, report_json
from tests.aio import aio
from tests.redis.kit import close, get, make_store, message, receipt, settled, until, write
from tests.redisd import prefix


@pytest.fixture
def keys(redis_server):
    return redis_server, prefix()


def raw(url):
    return redis.Redis.from_url(url)


def final(i, state=2):
    m = message(i, state=state, provider="sim", provider_id=f"p{i}", done_at=1500.0)
    m.receipt = RECEIPT_OWED
    return m


@pytest_twisted.ensureDeferred
async def test_a_message_reads_back_with_its_columns_and_trail(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1")
        m = message(1, text="Привет €")
        assert await write(store, [InsertMessage(m)]) is None
        m.state, m.provider, m.provider_id, m.sent_at = ENROUTE, "sim", "abc", 1001.5
        event = TrailEvent(1002.0, "status", {"state": "ENROUTE"})
        assert await write(store, [UpdateMessage(m), AddEvent(m.id, event)]) is None
        back = await get(store, m.id)
        assert back is not None
        assert (back.text, back.state, back.provider_id, back.sent_at, back.done_at) == (
            "Привет €", ENROUTE, "abc", 1001.5, None)  # fmt: skip
        assert back.stored_at is not None
        trail = []
        store.get_trail(m.id, lambda r, events: trail.extend(events))
        await until(lambda: trail)
        assert trail == [event]
        assert await get(store, "nope") is None
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_writes_of_one_loop_turn_are_one_commit(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1")
        import asyncio

        loop = asyncio.get_event_loop()
        futs = [loop.create_future() for _ in range(5)]
        for i, f in enumerate(futs):
            store.write([InsertMessage(message(i))], f.set_result)
        assert await asyncio.gather(*futs) == [None] * 5
        assert store.batches == 1 and store.ops_written == 5
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_final_receipt_reaches_the_process_that_has_room_for_it_and_settles_there(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a")
        b, sink_b = make_store(url, p, "b")
        m = message(7)
        await write(a, [InsertMessage(m)])
        m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED
        await write(a, [UpdateMessage(m), AddOutbox(receipt(m))])
        b.want_receipts("demo", 10)  # a receiver of "demo" is bound to b, none to a
        await until(lambda: sink_b.delivered)
        assert [r.message_id for r in sink_b.delivered] == [m.id] and sink_a.delivered == []
        got = sink_b.delivered[0]
        assert got.on_row and got.short_message.startswith(b"id:0000000007 ")
        await write(b, [ReceiptDone(m.id, RECEIPT_DELIVERED, 1600.0, "127.0.0.1:4000")])
        r = raw(url)
        assert r.xlen(f"{p}rx:demo") == 0
        assert settled(r, f"{p}m:{m.id}")[::2] == (2, "127.0.0.1:4000")
        assert r.zscore(f"{p}done", f"+{m.id}") == 1500.0  # its batch's entry
        assert r.xinfo_groups(f"{p}rx:demo")[0]["pending"] == 0
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_submit_is_stored_while_state_changes_are_still_being_written(keys):
    """New messages commit in a lane of their own: a submit waits for the submits before it,
    not for a batch of state changes in flight (each costs Redis about what an insert does)."""

    async def body():
        import asyncio

        url, p = keys
        store, _ = make_store(url, p, "n1")
        first = message(1)
        assert await write(store, [InsertMessage(first)]) is None
        held, apply = asyncio.Event(), store._apply

        async def slow_state_changes(part):
            if not part.inserted:
                await held.wait()  # the state changes' round trip, made long
            return await apply(part)

        store._apply = slow_state_changes
        answers: dict[str, BaseException | None] = {}
        first.state, first.provider_id = ENROUTE, "p1"
        store.write([UpdateMessage(first)], lambda e: answers.setdefault("update", e))
        store.write([], lambda e: answers.setdefault("after update", e))  # waits for the update
        store.write([InsertMessage(message(2))], lambda e: answers.setdefault("insert", e))
        await until(lambda: "insert" in answers)
        assert answers == {"insert": None}  # stored, while the update is still on its way
        assert raw(url).exists(f"{p}m:0000000002")
        held.set()
        await until(lambda: len(answers) == 3)
        assert answers == {"insert": None, "update": None, "after update": None}
        back = await get(store, first.id)
        assert back is not None and (back.state, back.provider_id) == (ENROUTE, "p1")
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_batch_applied_twice_adds_its_receipts_once(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        m = message(3)
        await_ops = [InsertMessage(m)]
        part = Part([(await_ops, lambda e: None)], {}, store.keys)
        await store._apply(part)
        m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED
        enroute = message(4, state=1)
        ops = [UpdateMessage(m), AddOutbox(receipt(m)), AddOutbox(receipt(enroute, on_row=False))]
        part = Part([(ops, lambda e: None)], {}, store.keys)
        await store._apply(part)
        again = await store._apply(part)  # the answer was lost: the same bytes again
        assert raw(url).xlen(f"{p}rx:demo") == 2
        assert again[0] == []  # ours, final already: not taken for another process's
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_too_many_waiting_receipts_drop_the_oldest_and_settle_its_row(keys):
    async def body():
        url, p = keys
        store, sink = make_store(url, p, "n1", max_per_account=2)
        ms = [message(i) for i in range(3)]
        await write(store, [InsertMessage(m) for m in ms])
        for m in ms:
            m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED
            await write(store, [UpdateMessage(m), AddOutbox(receipt(m))])
        r = raw(url)
        assert r.xlen(f"{p}rx:demo") == 2
        assert settled(r, f"{p}m:{ms[0].id}")[::2] == (4, "overflow")
        assert sink.dropped == [("demo", ms[0].id, 2, "overflow")]
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_only_the_owning_process_may_change_a_message(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        m = message(5)
        await write(a, [InsertMessage(m)])
        sent = message(5, state=1, provider="sim", provider_id="P5")
        assert await write(b, [UpdateMessage(sent)]) is None  # refused inside the script
        other = message(5, state=2, provider="sim", done_at=9.0)
        assert await write(b, [UpdateMessage(other)]) is None
        assert (await get(a, m.id)).state == 0
        r = raw(url)
        assert not r.exists(f"{p}pid:sim:P5") and r.sismember(f"{p}open:a", m.id)
        assert r.zcard(f"{p}done") == 0
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_provider_id_is_indexed_until_the_final_state_also_after_a_restart(keys):
    async def body():
        url, p = keys
        r = raw(url)
        a, _ = make_store(url, p, "a")
        ms = [message(i) for i in (8, 9)]
        await write(a, [InsertMessage(m) for m in ms])
        sent = [message(i, state=1, provider="sim", provider_id=f"P{i}") for i in (8, 9)]
        await write(a, [UpdateMessage(m) for m in sent])
        assert r.get(f"{p}pid:sim:P8") == ms[0].id.encode() and r.exists(f"{p}pid:sim:P9")
        done = message(8, state=2, provider="sim", provider_id="P8", done_at=9.0)
        await write(a, [UpdateMessage(done)])
        assert not r.exists(f"{p}pid:sim:P8")
        await a._close(grace=2.0)
        again, _ = make_store(url, p, "a")  # the same name: its unfinished message comes back
        assert [m.id for m in again.snapshot.unfinished] == [ms[1].id]
        done = message(9, state=2, provider="sim", provider_id="P9", done_at=9.0)
        await write(again, [UpdateMessage(done)])
        assert not r.exists(f"{p}pid:sim:P9")
        await close(again)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_dead_process_s_unfinished_messages_and_reports_go_to_a_live_one(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a", attach=False)
        b, sink_b = make_store(url, p, "b", attach=False)
        open_ids = [message(i) for i in range(3)]
        await write(a, [InsertMessage(m) for m in open_ids] + [InsertMessage(message(9, state=2))])
        r = raw(url)
        report = report_json("fly", StatusReport("FLY-1", 2, "DELIVERED"))
        r.xadd(f"{p}inbox:a", {"t": "report", "r": report})  # forwarded to a, never read
        r.delete(f"{p}node:a")  # its heartbeat expired
        b.attach(_sink_of(sink_b))
        await until(lambda: len(sink_b.claimed) == 3)
        assert sorted(m.id for m in sink_b.claimed) == sorted(m.id for m in open_ids)
        assert r.smembers(f"{p}open:a") == set() and r.scard(f"{p}open:b") == 3
        assert r.hget(f"{p}m:{open_ids[0].id}", "node") == b"b"
        await until(lambda: sink_b.forwarded)  # the report a never read: now b's
        assert sink_b.forwarded[0][1].provider_id == "FLY-1" and not r.exists(f"{p}inbox:a")
        assert b.lease.claimed == 3
        await close(b)

    await aio(body())


def _sink_of(sink):
    from tests.redis.kit import _Adapter

    return _Adapter(sink)


@pytest_twisted.ensureDeferred
async def test_a_process_taken_for_dead_learns_it_and_starts_anew(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a", attach=False)
        b, _ = make_store(url, p, "b", attach=False)
        await write(a, [InsertMessage(message(1))])
        r = raw(url)
        r.delete(f"{p}node:a")
        assert await b.lease.claim("a") == ["0000000001"]
        await a.lease._beat()  # a reaches Redis again
        a.sink = _sink_of(sink_a)
        await a.lease._beat()
        assert r.get(f"{p}node:a") == a.token.encode() and r.sismember(f"{p}nodes", "a")
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_fenced_process_drops_its_work(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a", attach=False)
        b, _ = make_store(url, p, "b", attach=False)
        a.sink = _sink_of(sink_a)
        r = raw(url)
        r.delete(f"{p}node:a")
        await b.lease.claim("a")
        await a.lease._beat()
        assert sink_a.fenced_count == 1 and a.lease.may_send()
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_report_received_by_another_process_reaches_the_owner(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a")
        b, sink_b = make_store(url, p, "b")
        m = message(11)
        await write(a, [InsertMessage(m)])
        m.state, m.provider, m.provider_id = ENROUTE, "fly", "FLY-11"
        await write(a, [UpdateMessage(m)])
        b.route_report("fly", StatusReport("FLY-11", 2, "DELIVERED", "000"))
        await until(lambda: sink_a.forwarded)
        assert sink_a.forwarded[0][0] == "fly" and sink_a.forwarded[0][1].provider_id == "FLY-11"
        assert sink_b.forwarded == []
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_report_before_its_send_answer_waits_for_it(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        m = message(12)
        await write(a, [InsertMessage(m)])
        b.route_report("fly", StatusReport("FLY-12", 5, "UNDELIV", "001"))
        await until(lambda: raw(url).exists(f"{p}early:fly:FLY-12"))
        m.state, m.provider, m.provider_id = ENROUTE, "fly", "FLY-12"
        await write(a, [UpdateMessage(m)])
        assert [(prov, rep.state) for prov, rep in sink_a.forwarded] == [("fly", 5)]
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_binds_count_in_every_process_and_not_for_a_dead_one(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        import asyncio

        async def bind(store, member):
            fut = asyncio.get_event_loop().create_future()
            store.bind("demo", member, 3, fut.set_result)
            return await fut

        assert [await bind(a, "s1"), await bind(a, "s2"), await bind(b, "s3")] == [True] * 3
        assert await bind(b, "s4") is False
        b.unbind("demo", "s3")
        await until(lambda: raw(url).hlen(f"{p}binds:demo") == 2)
        assert await bind(b, "s4") is True
        raw(url).delete(f"{p}node:a")  # a died: its two binds no longer count
        assert await bind(b, "s5") is True and await bind(b, "s6") is True
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_shared_bucket_lends_its_burst_once_to_all_processes(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        got = []
        for store in (a, b, a, b):
            got.append((await store.script("bucket", [p, "account:demo", "0.0001", "5", 4]))[0])
        assert sum(got) == 5 and got[:2] == [4, 1]
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_request_slots_hold_for_all_processes(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        assert await a._slots_call(["provider:x", 3, 2]) == 2
        assert await b._slots_call(["provider:x", 3, 2]) == 1
        assert await b._slots_call(["provider:x", 3, 1]) == 0
        await a._slots_call(["provider:x", 3, -2])
        assert await b._slots_call(["provider:x", 3, 5]) == 2
        raw(url).delete(f"{p}node:b")  # b died holding 3: they come free
        assert await a._slots_call(["provider:x", 3, 3]) == 3
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_id_blocks_of_two_processes_never_overlap(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        import asyncio

        fut = asyncio.get_event_loop().create_future()
        a.reserve_ids(100, fut.set_result)
        first = await fut
        blocks = [
            range(a.snapshot.next_id, a.snapshot.id_limit),
            range(b.snapshot.next_id, b.snapshot.id_limit),
            range(first, first + 100),
        ]
        numbers = [n for block in blocks for n in block]
        assert len(numbers) == len(set(numbers)) == 20_100
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_retention_removes_settled_final_messages_with_their_trail(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1")
        ms = [message(i) for i in range(4)]
        await write(store, [InsertMessage(m) for m in ms])
        for m in ms:
            m.state, m.done_at = 2, 1500.0 + int(m.id)
        ms[3].receipt = RECEIPT_OWED  # its receipt still waits: kept
        await write(store, [UpdateMessage(ms[0]), AddEvent(ms[0].id, TrailEvent(1.0, "x", {}))])
        for m in ms[1:]:  # (a batch each: retention's entry is per batch)
            await write(store, [UpdateMessage(m)])
        import asyncio

        async def purge(before, limit):
            fut = asyncio.get_event_loop().create_future()
            store.purge(before, limit, lambda n, more: fut.set_result((n, more)))
            return await fut

        assert await purge(1501.5, 10) == (2, False)  # done at 1500 and 1501
        assert await purge(9999.0, 10) == (1, False)
        r = raw(url)
        assert [r.exists(f"{p}m:{m.id}") for m in ms] == [0, 0, 0, 1]
        assert r.zscore(f"{p}done", f"+{ms[3].id}") > 9999.0  # passed over: to the back of the set
        assert not r.exists(f"{p}ev:{ms[0].id}")
        assert store.purged == 3
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_retention_takes_a_batch_s_messages_once_the_latest_is_old_enough(keys):
    """Retention's index has one entry per batch of final states, scored by the latest done
    time of its messages: they go together once that is past; one whose receipt is still owed
    stays in the entry, which goes to the back, until it is settled."""

    async def body():
        import asyncio

        from smppgw.store.base import RECEIPT_DELIVERED, ReceiptDone

        url, p = keys
        store, _ = make_store(url, p, "n1")
        ms = [message(i) for i in range(3)]
        await write(store, [InsertMessage(m) for m in ms])
        for m in ms:
            m.state, m.done_at = 2, 1500.0 + int(m.id)
        ms[1].receipt = RECEIPT_OWED
        await write(store, [UpdateMessage(m) for m in ms])
        ms.append(message(9))  # done in a provider's clock ahead of ours: scored now, not then
        await write(store, [InsertMessage(ms[3])])
        ms[3].state, ms[3].done_at = 2, 4e9
        await write(store, [UpdateMessage(ms[3])])
        r = raw(url)
        assert r.zscore(f"{p}done", "+0000000000") == 1502.0
        assert time.time() - 60 < r.zscore(f"{p}done", "+0000000009") <= time.time()

        async def purge(before, limit):
            fut = asyncio.get_event_loop().create_future()
            store.purge(before, limit, lambda n, more: fut.set_result((n, more)))
            return await fut

        assert await purge(1501.5, 10) == (0, False)  # the batch's latest was done at 1502
        assert await purge(1502.5, 10) == (2, False)
        assert [r.exists(f"{p}m:{m.id}") for m in ms[:3]] == [0, 1, 0]
        assert r.get(f"{p}dn:0000000000") == b",0000000001"  # the owed one, at the back
        assert r.zscore(f"{p}done", "+0000000000") > 1502.5
        await write(store, [ReceiptDone(ms[1].id, RECEIPT_DELIVERED, 1600.0, "peer")])
        assert await purge(time.time() + 1, 10) == (2, False)  # and the one of the clock ahead
        assert not r.exists(f"{p}m:{ms[1].id}", f"{p}dn:0000000000", f"{p}dn:0000000009")
        assert r.zcard(f"{p}done") == 0
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_records_given_back_reach_a_receiver_in_another_process(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a")
        b, sink_b = make_store(url, p, "b")
        m = final(21)
        await write(a, [InsertMessage(message(21))])
        await write(a, [UpdateMessage(m), AddOutbox(receipt(m))])
        a.want_receipts("demo", 5)
        await until(lambda: sink_a.delivered)
        a.want_receipts("demo", 0)
        a.give_back(sink_a.delivered)  # a's receiver went before sending it
        b.want_receipts("demo", 5)
        await until(lambda: sink_b.delivered)
        assert [r.message_id for r in sink_b.delivered] == [m.id]
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_records_a_dead_process_held_are_adopted_by_a_reader(keys):
    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a")
        b, sink_b = make_store(url, p, "b")
        m = final(22)
        await write(a, [InsertMessage(message(22))])
        await write(a, [UpdateMessage(m), AddOutbox(receipt(m))])
        a.want_receipts("demo", 5)
        await until(lambda: sink_a.delivered)  # pending for a, never answered: a dies
        await a.feed.stop()
        await a.lease.stop()
        b.want_receipts("demo", 5)
        await b.feed._touch_and_adopt()
        assert sink_b.delivered == []  # not idle for claim_after yet: still a's
        b.feed.claim_after = 0.0
        await b.feed._touch_and_adopt()
        assert [r.message_id for r in sink_b.delivered] == [m.id]
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_without_redis_new_submits_fail_at_once_and_state_changes_wait_for_it(tmp_path):
    from tests.redisd import RedisServer

    server = RedisServer(tmp_path / "redis", appendonly=True).start()

    async def body():
        import asyncio

        p = prefix()
        store, _ = make_store(server.url, p, "n1")
        m = message(1)
        await write(store, [InsertMessage(m)])
        server.kill()
        loop = asyncio.get_event_loop()
        state_done = loop.create_future()
        m.state, m.provider, m.provider_id = ENROUTE, "sim", "x1"
        store.write([UpdateMessage(m)], state_done.set_result)
        error = await write(store, [InsertMessage(message(2))])
        assert error is not None and "unreachable" in str(error)
        assert not store.healthy() and not state_done.done()
        server.start()
        assert await asyncio.wait_for(state_done, 15) is None
        assert (await get(store, m.id)).provider_id == "x1"
        assert await get(store, "0000000002") is None  # refused: not stored
        assert store.healthy()
        await close(store)

    try:
        await aio(body())
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_waiting_receipt_of_the_layout_before_is_dropped_like_the_others(keys):
    """An entry written before entries were one field (key, message_id, on_row, state as fields
    of their own) still reads back and, pushed out by newer ones, settles its message's row."""

    async def body():
        url, p = keys
        store, sink = make_store(url, p, "n1", max_per_account=2)
        ms = [message(i) for i in range(3)]
        await write(store, [InsertMessage(m) for m in ms])
        for m in ms:
            m.state, m.done_at, m.receipt = 2, 1500.0, RECEIPT_OWED
        await write(store, [UpdateMessage(ms[0])])
        r = raw(url)
        old = {
            "key": f"{ms[0].id}/final", "message_id": ms[0].id, "on_row": "1", "state": "2",
            "d": '["demo","380501234567",1,1,"SRC",5,0,4,0,2000.0,null,null,"a","id"]',
        }  # fmt: skip
        r.xgroup_create(f"{p}rx:demo", "gw", "0", mkstream=True)
        r.sadd(f"{p}rxs", "demo")
        r.xadd(f"{p}rx:demo", old)
        assert record_from_entry(r.xrange(f"{p}rx:demo")[0][1]).message_id == ms[0].id
        for m in ms[1:]:
            await write(store, [UpdateMessage(m), AddOutbox(receipt(m))])
        assert r.xlen(f"{p}rx:demo") == 2
        assert settled(r, f"{p}m:{ms[0].id}")[::2] == (4, "overflow")
        assert sink.dropped == [("demo", ms[0].id, 2, "overflow")]
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_receipts_nobody_reads_for_max_age_are_dropped_and_dead_readers_forgotten(keys):
    async def body():
        url, p = keys
        store, sink = make_store(url, p, "n1", max_age=0.001)
        m = final(31)
        await write(store, [InsertMessage(message(31))])
        await write(store, [UpdateMessage(m), AddOutbox(receipt(m))])
        r = raw(url)
        r.xgroup_createconsumer(f"{p}rx:demo", "gw", "gone-123")  # a reader whose process ended
        await until(
            lambda: (
                r.time()[0] * 1000 + r.time()[1] // 1000 > int(r.xrange(f"{p}rx:demo")[0][0].split(b"-")[0])
            )
        )
        await store.feed._sweep()
        assert r.xlen(f"{p}rx:demo") == 0
        assert settled(r, f"{p}m:{m.id}")[::2] == (4, "expired")
        assert sink.dropped == [("demo", m.id, 2, "expired")]
        assert [c["name"] for c in r.xinfo_consumers(f"{p}rx:demo", "gw")] == []
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_full_redis_refuses_new_submits_and_keeps_state_changes_until_it_has_room(tmp_path):
    from tests.redisd import RedisServer

    server = RedisServer(tmp_path / "redis", extra=("--maxmemory-policy", "noeviction")).start()

    async def body():
        import asyncio

        p = prefix()
        store, _ = make_store(server.url, p, "n1")
        m = message(1)
        await write(store, [InsertMessage(m)])
        r = raw(server.url)
        r.set("ballast", b"x" * 6_000_000)  # not ours
        r.config_set("maxmemory", "4mb")  # Redis is full now: it refuses writes
        done = asyncio.get_event_loop().create_future()
        m.state, m.provider, m.provider_id = ENROUTE, "sim", "x1"
        store.write([UpdateMessage(m)], done.set_result)
        error = await write(store, [InsertMessage(message(2))])
        assert error is not None and not done.done() and not store.healthy()
        r.config_set("maxmemory", "0")  # room again
        assert await asyncio.wait_for(done, 15) is None
        assert (await get(store, m.id)).provider_id == "x1" and store.healthy()
        await close(store)

    try:
        await aio(body())
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_with_wait_replicas_a_submit_counts_only_once_a_replica_has_it(tmp_path):
    from tests.redisd import RedisServer

    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(primary.port))).start()

    async def body():
        p = prefix()
        r = raw(primary.url)
        deadline = asyncio.get_event_loop().time() + 10
        while r.info("replication").get("slave0", {}).get("state") != "online":  # its first sync
            assert asyncio.get_event_loop().time() < deadline
            await asyncio.sleep(0.05)
        store, _ = make_store(primary.url, p, "n1", store={"wait_replicas": 1, "wait_timeout": 0.3})
        assert await write(store, [InsertMessage(message(1))]) is None
        assert raw(replica.url).exists(f"{p}m:0000000001")  # the replica had it before the ack
        replica.kill()
        error = await write(store, [InsertMessage(message(2))])
        assert error is not None and not store.healthy()  # on the primary only: refused
        # a state change waits until a replica has it too; its first try removes message 2 again
        store.write([AddEvent("0000000001", TrailEvent(1.0, "x", {}))], lambda e: None)
        await until(lambda: not r.exists(f"{p}m:0000000002"))
        await close(store)

    import asyncio

    try:
        await aio(body())
    finally:
        replica.stop()
        primary.stop()
