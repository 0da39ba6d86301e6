"""Several gateway processes sharing one Redis behave as one gateway (issue 9), end to end over
TCP with smpplib: a receiver bound to another process than the transmitter gets every receipt
once; a provider's webhook may reach any process; a process killed with SIGKILL mid-load has its
work finished by another; Redis killed and restarted (AOF) loses nothing acknowledged; bind
limits and an account's throughput hold for all processes together. The tests taking the
`store` fixture run twice: on one Redis and on a three-shard Redis Cluster (issue 16)."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import Counter

import pytest
import smpplib.consts

from smppgw.fakes import fake_class
from tests.e2e.harness import bind_status, connect, receipt_fields
from tests.e2e.nodes import Node
from tests.redisd import RedisServer


@pytest.fixture
def store(shared_store):
    return shared_store  # each test on one Redis and on a Redis Cluster


@pytest.fixture
def nodes():
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


def send(tx, count: int, start: int = 0, wave: int = 50) -> list[str]:
    """Submit `count` messages in waves within the window; the ids acknowledged with ESME_ROK."""
    done = len(tx.resps)
    for first in range(start, start + count, wave):
        n = min(wave, start + count - first)
        for i in range(first, first + n):
            tx.submit(dest=f"38050{i:05d}99", text=b"cluster %d" % i)  # no suffix of the fakes
        target = done + (first - start) + n
        assert tx.pump(lambda t=target: len(tx.resps) >= t, timeout=20)
    return [p.message_id.decode() for p in tx.resps[done:] if p.status == 0]


def collect(rx, ids: list[str], timeout: float = 30.0) -> Counter:
    want = set(ids)
    rx.pump(lambda: want <= {r.receipted_message_id.decode() for r in rx.receipts}, timeout=timeout)
    rx.pump(lambda: False, timeout=1.0)  # a duplicate would arrive now
    return Counter(r.receipted_message_id.decode() for r in rx.receipts)


def test_a_receiver_on_another_process_gets_every_receipt_once(tmp_path, store, nodes):
    a = Node(tmp_path, "a", store).start()
    b = Node(tmp_path, "b", store).start()
    nodes += [a, b]
    rx = connect(b.smpp, kind="receiver")
    tx = connect(a.smpp, kind="transmitter")
    acked = send(tx, 300)
    assert len(acked) == 300
    got = collect(rx, acked)
    assert got == Counter(acked)  # every id once, nothing else
    assert {receipt_fields(r)["stat"] for r in rx.receipts} == {"DELIVRD"}
    tx.close()
    rx.close()
    assert a.stop() == 0 and b.stop() == 0


def test_receipts_waiting_for_a_receiver_go_where_it_binds_next(tmp_path, store, nodes):
    a = Node(tmp_path, "a", store).start()
    b = Node(tmp_path, "b", store).start()
    nodes += [a, b]
    tx = connect(a.smpp, kind="transmitter")
    acked = send(tx, 100)  # no receiver anywhere: they wait
    deadline = time.monotonic() + 10
    while not a.metric("smppgw_receipt_outbox", account="demo") == b.metric("smppgw_receipt_outbox") == 100:
        assert time.monotonic() < deadline, "both processes report the receipts waiting in Redis"
        time.sleep(0.1)  # polling real processes' metrics
    first = connect(b.smpp, kind="receiver")
    first.answer_status = 0x64  # temporary refusals: b keeps them and retries later
    assert first.pump(lambda: len(first.receipts) >= 10, timeout=20)
    first.client.disconnect()  # the receiver leaves b; b gives back what it held
    rx = connect(a.smpp, kind="receiver")
    got = collect(rx, acked)
    assert set(got) == set(acked) and max(got.values()) == 1
    tx.close()
    rx.close()


def test_a_webhook_reaching_another_process_finds_its_message(tmp_path, store, nodes):
    fake = fake_class("floppysend")(delay=0.3, api_key="floppy-key").start()  # reports by webhook only
    try:
        provider = {
            "type": "floppysend",
            "url": fake.url,
            "api_key": "floppy-key",
            "webhook_secret": "s3cret-hook",
        }
        a = Node(tmp_path, "a", store, providers={"floppy": provider}).start()
        b = Node(tmp_path, "b", store, providers={"floppy": provider}).start()
        nodes += [a, b]
        fake.webhook_url = f"http://127.0.0.1:{b.http}/webhooks/floppy/s3cret-hook"  # only b hears it
        trx = connect(a.smpp)
        acked = send(trx, 20)
        got = collect(trx, acked)
        assert got == Counter(acked)
        stats = Counter(receipt_fields(r)["stat"] for r in trx.receipts)
        assert stats == Counter({"DELIVRD": 20})
        assert len(fake.messages) == 20  # each sent once, by a
        assert b.metric("smppgw_webhooks_total") >= 20
        assert b.metric("smppgw_store_reports_forwarded_total") >= 1  # reports for a's messages
        trx.close()
    finally:
        fake.stop()


def test_a_killed_process_s_work_is_finished_by_another(tmp_path, store, nodes):
    slow = {"sim": {"type": "simulator", "delay": 1.5, "outcomes": {"DELIVRD": 3, "UNDELIV": 1}}}
    a = Node(tmp_path, "a", store, providers=slow).start()
    b = Node(tmp_path, "b", store, providers=slow).start()
    nodes += [a, b]
    rx = connect(b.smpp, kind="receiver")
    tx = connect(a.smpp, kind="transmitter")
    acked = send(tx, 400)
    assert len(acked) == 400
    a.kill()  # most of its messages still wait for the provider's status
    t0 = time.monotonic()
    got = collect(rx, acked, timeout=40)
    assert got == Counter(acked), (
        f"missing {len(set(acked) - set(got))}, twice {sum(v > 1 for v in got.values())}"
    )
    assert {receipt_fields(r)["stat"] for r in rx.receipts} <= {"DELIVRD", "UNDELIV"}
    assert "node_claimed dead=a node=b" in b.log_text()
    assert b.metric("smppgw_store_claimed_total") > 0
    assert time.monotonic() - t0 < 3 + 1.5 + 10  # claim_after + the provider's time + slack
    rx.close()


def test_receipts_a_killed_process_owed_its_own_receiver_reach_a_receiver_elsewhere(tmp_path, store, nodes):
    """The final receipts a process hands its own receiver straight from their commits have no
    stream entry (their messages stay in `open:<node>`): its receiver here never answers them, the
    process is killed, and the one that takes over rebuilds them from their messages."""
    a = Node(tmp_path, "a", store).start()
    b = Node(tmp_path, "b", store).start()
    nodes += [a, b]
    stuck = connect(a.smpp, kind="receiver")  # reads nothing, so answers nothing
    tx = connect(a.smpp, kind="transmitter")
    acked = send(tx, 100)
    assert len(acked) == 100
    deadline = time.monotonic() + 20
    while a.metric("smppgw_pdus_total", direction="out", command="deliver_sm") < 1:
        assert time.monotonic() < deadline, "a handed its receiver nothing"
        time.sleep(0.1)  # polling a real process's metrics
    rx = connect(b.smpp, kind="receiver")
    a.kill()
    got = collect(rx, acked, timeout=40)
    assert got == Counter(acked), (
        f"missing {len(set(acked) - set(got))}, twice {sum(v > 1 for v in got.values())}"
    )
    assert re.search(r"event=receipts_requeued .*added=[1-9]", b.log_text()), b.log_text()[-2000:]
    rx.close()
    stuck.client.disconnect()  # (its process is gone)


def test_redis_killed_and_restarted_loses_nothing_acknowledged(tmp_path, nodes):
    server = RedisServer(tmp_path / "redis", appendonly=True).start()  # appendfsync everysec
    try:
        store = {"type": "redis", "url": server.url, "key_prefix": "t:", "claim_after": 3}
        gw = Node(tmp_path, "a", store).start()
        nodes.append(gw)
        rx = connect(gw.smpp, kind="receiver")
        tx = connect(gw.smpp, kind="transmitter")
        acked = send(tx, 100)
        server.kill()
        during = send(tx, 20, start=100, wave=20)  # answered, but never with ESME_ROK
        statuses = {p.status for p in tx.resps[100:]}
        assert during == [] and statuses <= {smpplib.consts.SMPP_ESME_RSYSERR}
        assert gw.health() == 503
        server.start()
        deadline = time.monotonic() + 15
        while gw.health() != 200:
            assert time.monotonic() < deadline, "the gateway did not reconnect"
            time.sleep(0.1)  # polling a real process's health page
        acked += send(tx, 100, start=200)
        got = collect(rx, acked, timeout=30)
        assert got == Counter(acked)
        tx.close()
        rx.close()
        assert gw.stop() == 0
    finally:
        server.stop()


def test_max_binds_holds_for_all_processes(tmp_path, store, nodes):
    accounts = {"demo": {"password": "demo", "max_binds": 2}}
    a = Node(tmp_path, "a", store, accounts=accounts).start()
    b = Node(tmp_path, "b", store, accounts=accounts).start()
    nodes += [a, b]
    first = connect(a.smpp, kind="receiver")
    second = connect(b.smpp, kind="transmitter")
    assert bind_status(a.smpp, kind="transmitter") == smpplib.consts.SMPP_ESME_RBINDFAIL
    assert bind_status(b.smpp, kind="transmitter") == smpplib.consts.SMPP_ESME_RBINDFAIL
    second.close()
    deadline = time.monotonic() + 5
    while bind_status(a.smpp, kind="transmitter") != 0:  # the unbind reaches Redis
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling a real process
    first.close()


def test_an_account_s_throughput_holds_for_all_processes(tmp_path, store, nodes):
    accounts = {"demo": {"password": "demo", "throughput": 20, "burst": 20}}
    a = Node(tmp_path, "a", store, accounts=accounts).start()
    b = Node(tmp_path, "b", store, accounts=accounts).start()
    nodes += [a, b]
    results: dict[str, list[int]] = {}

    def flood(node: Node) -> None:
        tx = connect(node.smpp, kind="transmitter")
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # as fast as the answers come, for two seconds
            sent = len(tx.resps)
            for _ in range(5):
                tx.submit(rd=0)
            tx.pump(lambda s=sent: len(tx.resps) >= s + 5, timeout=5)
        results[node.name] = [p.status for p in tx.resps]
        tx.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=flood, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    ok = sum(s == 0 for statuses in results.values() for s in statuses)
    throttled = {
        name: sum(s == smpplib.consts.SMPP_ESME_RTHROTTLED for s in st) for name, st in results.items()
    }
    # one bucket of 20/s and 20 burst for both processes (plus what each holds on loan: 1 token)
    assert ok <= 20 + 20 * elapsed + 2, (ok, elapsed)
    assert ok >= 20  # the burst at least
    assert all(n > 0 for n in throttled.values()), throttled


def test_the_redis_password_appears_in_no_log_line_metric_or_error(tmp_path, nodes):
    secret = "s3cret-Redis-pw"
    server = RedisServer(tmp_path / "redis", extra=("--requirepass", secret)).start()
    try:
        store = {"type": "redis", "url": f"redis://:{secret}@127.0.0.1:{server.port}/0", "claim_after": 3}
        gw = Node(tmp_path, "a", store).start()
        nodes.append(gw)
        trx = connect(gw.smpp)
        acked = send(trx, 10)
        assert collect(trx, acked) == Counter(acked)
        server.kill()  # errors get logged now
        send(trx, 5, start=10, wave=5)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{gw.http}/metrics", timeout=5).read().decode()
        trx.close()
        assert gw.stop() == 0
        log = gw.log_text()
        assert "store_unreachable" in log and "redis://:***@127.0.0.1" in log
        assert secret not in log and secret not in metrics
    finally:
        server.stop()
