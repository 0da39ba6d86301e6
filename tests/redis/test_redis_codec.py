"""What the Redis store writes reads back as it was: a message through the commit script (its
fixed columns packed in `d`, with its provider until it is sent, its state, the columns its
sending changes packed in `s`, its receipt in `r`), a deliver_sm through its stream entry, and
the records of stores before."""

from __future__ import annotations

import dataclasses
import json

import pytest
import pytest_twisted
import redis

from smppgw.providers.base import StatusReport
from smppgw.store.base import AddOutbox, InsertMessage, OutboxRecord, ReplaceMessage, UpdateMessage
from smppgw.store.redis.codec import message_from_hash, packed, record_from_entry, sent_blob
from tests.aio import aio
from tests.redis.kit import close, make_store, message, until, write
from tests.redisd import prefix


@pytest.fixture
def keys(redis_server):
    return redis_server, prefix()


def raw(url):
    return redis.Redis.from_url(url)


@pytest_twisted.ensureDeferred
async def test_a_message_reads_back_whole_after_insert_update_and_replace(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        m = message(11, text="Привіт \ud83d", user_message_reference=7, valid_until=5000.5)
        await write(store, [InsertMessage(m)])
        r = raw(url)
        h = r.hgetall(f"{p}m:{m.id}")
        assert set(h) == {b"node", b"d"}  # nothing else at its default
        assert message_from_hash(h) == m

        m.state, m.provider, m.provider_id, m.attempts, m.sent_at = 1, "sim", "p-11", 1, 1200.25
        await write(store, [UpdateMessage(m)])
        assert message_from_hash(r.hgetall(f"{p}m:{m.id}")) == m
        h = r.hgetall(f"{p}m:{m.id}")
        assert set(h) == {b"node", b"d", b"state", b"s", b"pid"}
        assert (h[b"state"], h[b"pid"]) == (b"1", b"sim:p-11")
        assert h[b"s"] == b'["sim","p-11","000",1,null,1200.25]'  # done_at unset: None

        m.text, m.valid_until, m.schedule_at = "replaced", None, 3000.0
        await write(store, [ReplaceMessage(m)])
        got = message_from_hash(r.hgetall(f"{p}m:{m.id}"))
        assert got == m and got.valid_until is None and got.schedule_at == 3000.0
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_message_routed_but_not_sent_keeps_its_provider_in_d_and_reports_find_it(keys):
    """A message as submits make it has a provider and nothing else of `s` set: it is written
    without `s`, its provider last in `d`; a replace keeps it; a report naming our id finds the
    message by that provider (and only by it) until it is sent."""

    async def body():
        url, p = keys
        a, sink_a = make_store(url, p, "a")
        b, _ = make_store(url, p, "b")
        m = message(12, provider="sim")
        await write(a, [InsertMessage(m)])
        r = raw(url)
        h = r.hgetall(f"{p}m:{m.id}")
        assert set(h) == {b"node", b"d"} and json.loads(h[b"d"])[-1] == "sim"
        assert message_from_hash(h) == m

        m.text = "replaced"
        await write(a, [ReplaceMessage(m)])
        assert message_from_hash(r.hgetall(f"{p}m:{m.id}")) == m

        assert await b._route("other", StatusReport("", 2, "DELIVERED", "000", None, m.id)) == b"early"
        assert await b._route("sim", StatusReport("", 2, "DELIVERED", "000", None, m.id)) == b"sent"
        await until(lambda: sink_a.forwarded)
        assert [(prov, rep.message_id) for prov, rep in sink_a.forwarded] == [("sim", m.id)]

        m.state, m.provider, m.provider_id, m.attempts = 1, "fly", "F-12", 1  # failed over, sent
        await write(a, [UpdateMessage(m)])
        h = r.hgetall(f"{p}m:{m.id}")
        assert json.loads(h[b"s"])[0] == "fly" and message_from_hash(h) == m  # `s` says now
        await close(a, b)

    await aio(body())


def test_a_message_s_d_of_the_layout_before_its_provider_reads():
    """`d` without the provider (the layout before): the provider is `s`'s, or none."""
    m = message(13, provider="sim", provider_id="S-13", state=1)
    d = json.dumps(json.loads(packed(m))[:-1])
    h = {b"d": d.encode(), b"node": b"a", b"state": b"1", b"s": sent_blob(m).encode()}
    assert message_from_hash(h) == m
    assert message_from_hash({b"d": d.encode(), b"node": b"a"}).provider == ""
    with pytest.raises(ValueError, match="columns"):
        message_from_hash({b"d": b"[1, 2]", b"node": b"a"})


@pytest_twisted.ensureDeferred
async def test_a_deliver_sm_reads_back_from_its_stream_entry(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        mo = OutboxRecord(
            key="mo:1", account="demo", message_id="mo-1", state=0, source_addr="380501234567",
            source_ton=1, source_npi=1, dest_addr="SRC", dest_ton=5, dest_npi=0, esm_class=0,
            data_coding=8, short_message="привіт".encode("utf-16-be"), created_at=1700.5,
        )  # fmt: skip
        ascii_x = dataclasses.replace(
            mo, key="mo:2", message_id="mo-2", data_coding=0, short_message=b"x41 hi"
        )
        await write(store, [AddOutbox(mo), AddOutbox(ascii_x)])
        entries = raw(url).xrange(f"{p}rx:demo")
        assert [record_from_entry(f) for _, f in entries] == [mo, ascii_x]
        await close(store)

    await aio(body())


def test_records_of_the_column_layout_still_read():
    h = {
        b"id": b"0000000001", b"account": b"demo", b"source": b"SRC", b"source_ton": b"5",
        b"source_npi": b"0", b"destination": b"380501234567", b"dest_ton": b"1", b"dest_npi": b"1",
        b"text": b"hello", b"data_coding": b"0", b"esm_class": b"0", b"registered_delivery": b"1",
        b"submitted_at": b"1000.0", b"state": b"2", b"done_at": b"1500.0", b"node": b"a",
    }  # fmt: skip
    m = message_from_hash(h)
    assert m is not None and (m.id, m.state, m.done_at, m.text) == ("0000000001", 2, 1500.0, "hello")
    f = {
        b"key": b"0000000001/final", b"message_id": b"0000000001", b"on_row": b"1", b"state": b"2",
        b"account": b"demo", b"source_addr": b"380501234567", b"source_ton": b"1", b"source_npi": b"1",
        b"dest_addr": b"SRC", b"dest_ton": b"5", b"dest_npi": b"0", b"esm_class": b"4",
        b"data_coding": b"0", b"created_at": b"2000.0", b"short_message_hex": b"6964",
    }  # fmt: skip
    e = record_from_entry(f)
    assert (e.on_row, e.short_message, e.created_at) == (True, b"id", 2000.0)
    # the layout before the one-field entry: the head as fields, the rest packed in `d`
    f = {
        b"key": b"0000000001/final", b"message_id": b"0000000001", b"on_row": b"1", b"state": b"2",
        b"d": b'["demo","380501234567",1,1,"SRC",5,0,4,0,2000.0,null,null,"a","id"]',
    }  # fmt: skip
    e = record_from_entry(f)
    head = (e.key, e.message_id, e.on_row, e.state, e.short_message)
    assert head == ("0000000001/final", "0000000001", True, 2, b"id")
    assert (e.account, e.dest_addr, e.esm_class, e.created_at) == ("demo", "SRC", 4, 2000.0)


@pytest.mark.parametrize("receiver_here", [False, True], ids=["receiver-elsewhere", "receiver-here"])
@pytest_twisted.ensureDeferred
async def test_a_message_s_life_costs_redis_a_few_commands(keys, receiver_here):
    """Redis's cost is per command: a message with a receipt costs one hash write at submit, one
    write at its final state (one read for the whole batch says whose they are), its stream
    entry (none when a receiver of the committing process takes it), one write when its receipt
    is settled; what the batch shares (open and owed sets, retention's one entry for the batch, acks) is
    one command each."""

    async def body():
        from smppgw.store.base import RECEIPT_DELIVERED, RECEIPT_OWED, ReceiptDone
        from tests.redis.kit import receipt, until

        url, p = keys
        store, sink = make_store(url, p, "n1")
        ms = [message(100 + i) for i in range(200)]
        r = raw(url)
        r.config_resetstat()
        await write(store, [InsertMessage(m) for m in ms])
        if receiver_here:
            store.want_receipts("demo", 500)
        ops = []
        for m in ms:
            m.state, m.provider, m.provider_id, m.done_at, m.receipt = (
                2,
                "sim",
                f"p{m.id}",
                1500.0,
                RECEIPT_OWED,
            )
            ops += [UpdateMessage(m), AddOutbox(receipt(m))]
        await write(store, ops)
        store.want_receipts("demo", 500)
        await until(lambda: len(sink.delivered) == len(ms))
        await write(store, [ReceiptDone(m.id, RECEIPT_DELIVERED, 1600.0, "peer") for m in ms])
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in r.info("commandstats").items()}
        assert r.xlen(f"{p}rx:demo") == 0
        (batch,) = r.zrange(f"{p}done", 0, -1, withscores=True)  # retention: one entry for the batch
        assert batch[1] == 1500.0 and r.get(f"{p}dn:{batch[0].decode()[1:]}").decode().split(",")[1:] == [
            m.id for m in ms
        ]
        assert not r.exists(f"{p}open:n1")  # every message settled: nothing open
        await close(store)
        per_message = {k: round(v / len(ms), 1) for k, v in calls.items() if v >= len(ms) / 2}
        entry = {} if receiver_here else {"xadd": 1.0}
        assert per_message == {"hset": 3.0, **entry}, calls  # (+1 wake entry)
        assert sum(calls.values()) < 6.2 * len(ms), calls  # everything else: a few per batch
        assert "del" not in calls  # no provider id was indexed before the final states

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_receipt_settled_for_a_message_already_gone_leaves_no_key(keys):
    async def body():
        from smppgw.store.base import RECEIPT_DELIVERED, ReceiptDone

        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        await write(store, [ReceiptDone("0000000999", RECEIPT_DELIVERED, 1600.0, "peer")])
        assert raw(url).exists(f"{p}m:0000000999") == 0
        await close(store)

    await aio(body())
