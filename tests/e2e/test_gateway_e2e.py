"""End to end over real TCP: smpplib ESMEs (in threads) against a gateway in the test reactor,
with the simulator provider and a real SQLite file."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.e2e.harness import bind_status, connect, http_port, receipt_fields, smpp_port, start_app


@pytest_twisted.async_yield_fixture
async def gw(tmp_path):
    app = start_app(tmp_path)
    yield app
    await app.stop(grace=1.0)


@pytest_twisted.ensureDeferred
async def test_bind_in_each_mode_and_wrong_credentials_get_their_codes(gw):
    port = smpp_port(gw)
    for kind in ("transmitter", "receiver", "transceiver"):
        assert await deferToThread(bind_status, port, kind=kind) == 0
    assert await deferToThread(bind_status, port, password="wrong") == 0x0E
    assert await deferToThread(bind_status, port, system_id="nobody") == 0x0F


@pytest_twisted.ensureDeferred
async def test_too_many_binds_get_rbindfail(gw):
    port = smpp_port(gw)

    def scenario():
        held = [connect(port, system_id="other", password="other1") for _ in range(2)]
        try:
            return bind_status(port, system_id="other", password="other1")
        finally:
            for e in held:
                e.close()

    assert await deferToThread(scenario) == 0x0D


@pytest_twisted.ensureDeferred
async def test_submit_before_bind_gets_rinvbndsts_and_session_stays_open(gw):
    port = smpp_port(gw)

    def scenario():
        import smpplib.client
        import smpplib.consts

        c = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
        c.connect()
        c.state = (
            smpplib.consts.SMPP_CLIENT_STATE_BOUND_TX
        )  # let smpplib send a submit_sm although nothing was bound
        p = c.send_message(source_addr="A", destination_addr="380501234567", short_message=b"x")
        resp = c.read_pdu()
        c.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN
        c.bind_transceiver(system_id="demo", password="demo")  # still usable: bind works after
        c.unbind()
        c.disconnect()
        return p.sequence, resp.sequence, resp.command, resp.status

    seq, rseq, command, status = await deferToThread(scenario)
    assert (rseq, command, status) == (seq, "submit_sm_resp", 0x04)


@pytest_twisted.ensureDeferred
async def test_submit_gets_id_and_a_well_formed_receipt_with_the_same_id(gw):
    port = smpp_port(gw)

    def scenario():
        esme = connect(port)
        esme.submit(text=b"hello world")
        assert esme.pump(lambda: esme.resps and esme.receipts)
        esme.close()
        return esme

    esme = await deferToThread(scenario)
    resp, receipt = esme.resps[0], esme.receipts[0]
    assert resp.status == 0
    mid = resp.message_id.decode()
    assert len(mid) == 10 and mid.isdigit()
    fields = receipt_fields(receipt)
    assert fields["id"] == mid and fields["stat"] == "DELIVRD" and fields["dlvrd"] == "001"
    assert receipt.receipted_message_id.decode() == mid
    assert receipt.message_state == 2
    assert receipt.esm_class == 0x04 and receipt.data_coding == 0
    assert receipt.source_addr.decode() == "380501234567" and receipt.destination_addr.decode() == "TEST"
    assert b"text:hello world" in receipt.short_message


@pytest_twisted.ensureDeferred
async def test_receipts_for_every_outcome(gw):
    port = smpp_port(gw)
    cases = {
        "380500000001": ("DELIVRD", 2),
        "380500000002": ("UNDELIV", 5),
        "380500000006": ("EXPIRED", 3),
        "380500000007": ("REJECTD", 8),
    }

    def scenario():
        esme = connect(port)
        for dest in cases:
            esme.submit(dest=dest)
        assert esme.pump(lambda: len(esme.receipts) == len(cases))
        esme.close()
        return esme

    esme = await deferToThread(scenario)
    got = {r.source_addr.decode(): (receipt_fields(r)["stat"], r.message_state) for r in esme.receipts}
    assert got == cases


@pytest_twisted.ensureDeferred
async def test_failure_only_and_intermediate_receipts_follow_registered_delivery(gw):
    port = smpp_port(gw)

    def scenario():
        esme = connect(port)
        esme.submit(dest="380500000001", rd=2)  # delivered: no receipt for failure-only
        esme.submit(dest="380500000002", rd=2)  # undelivered: receipt
        esme.submit(dest="380500000011", rd=0x11)  # ENROUTE then DELIVRD
        esme.pump(lambda: len(esme.receipts) >= 3, timeout=3)
        esme.close()
        return esme

    esme = await deferToThread(scenario)
    got = sorted((r.source_addr.decode(), receipt_fields(r)["stat"], r.esm_class) for r in esme.receipts)
    assert got == [
        ("380500000002", "UNDELIV", 4),
        ("380500000011", "DELIVRD", 4),
        ("380500000011", "ENROUTE", 4),
    ]


@pytest_twisted.ensureDeferred
async def test_transmitter_and_receiver_split_gets_receipts_on_the_receiver(gw):
    port = smpp_port(gw)

    def scenario():
        rx = connect(port, kind="receiver")
        tx = connect(port, kind="transmitter")
        for i in range(5):
            tx.submit(text=b"split %d" % i)
        assert tx.pump(lambda: len(tx.resps) == 5)
        assert rx.pump(lambda: len(rx.receipts) == 5)
        tx.close()
        rx.close()
        return tx, rx

    tx, rx = await deferToThread(scenario)
    assert sorted(p.message_id.decode() for p in tx.resps) == sorted(
        r.receipted_message_id.decode() for r in rx.receipts
    )
    assert tx.receipts == []


@pytest_twisted.ensureDeferred
async def test_receipts_wait_while_unbound_and_arrive_on_rebind_once(gw):
    port = smpp_port(gw)

    def send():
        tx = connect(port, kind="transmitter")
        for i in range(3):
            tx.submit(text=b"held %d" % i)
        assert tx.pump(lambda: len(tx.resps) == 3)
        tx.close()
        return [p.message_id.decode() for p in tx.resps]

    ids = await deferToThread(send)

    def collect():
        rx = connect(port, kind="receiver")
        rx.pump(lambda: len(rx.receipts) >= 3)
        rx.pump(lambda: False, timeout=0.5)  # anything more would be a duplicate
        rx.close()
        return rx

    rx = await deferToThread(collect)
    assert sorted(r.receipted_message_id.decode() for r in rx.receipts) == sorted(ids)
    assert gw.gateway.outbox.depth("demo") == 0


@pytest_twisted.ensureDeferred
async def test_receipt_refused_temporarily_is_sent_again(tmp_path):
    app = start_app(tmp_path, receipts={"retry_initial": 0.2, "retry_max": 0.2})
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        esme.answer_status = 0x64  # ESME_RX_T_APPN: temporary
        esme.submit()
        assert esme.pump(lambda: len(esme.receipts) == 1)
        esme.answer_status = 0
        assert esme.pump(lambda: len(esme.receipts) == 2)
        esme.pump(lambda: False, timeout=0.5)  # accepted now: no third copy
        esme.close()
        return esme

    try:
        esme = await deferToThread(scenario)
        assert len(esme.receipts) == 2
        assert esme.receipts[0].receipted_message_id == esme.receipts[1].receipted_message_id
        assert app.gateway.outbox.depth("demo") == 0
    finally:
        await app.stop(grace=1.0)


@pytest_twisted.ensureDeferred
async def test_metrics_move_with_traffic_and_healthz_answers(gw):
    port = smpp_port(gw)

    def scenario():
        esme = connect(port)
        for _ in range(3):
            esme.submit()
        assert esme.pump(lambda: len(esme.receipts) == 3)
        esme.sync()
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{http_port(gw)}/metrics", timeout=5).read().decode()
        )
        health = urllib.request.urlopen(f"http://127.0.0.1:{http_port(gw)}/healthz", timeout=5)
        esme.close()
        return metrics, health.status

    metrics, health = await deferToThread(scenario)
    assert health == 200
    assert 'smppgw_pdus_total{command="submit_sm",direction="in",status="ESME_ROK"} 3.0' in metrics
    assert 'smppgw_pdus_total{command="submit_sm_resp",direction="out",status="ESME_ROK"} 3.0' in metrics
    assert 'smppgw_pdus_total{command="deliver_sm",direction="out",status="ESME_ROK"} 3.0' in metrics
    assert 'smppgw_pdus_total{command="deliver_sm_resp",direction="in",status="ESME_ROK"} 3.0' in metrics
    assert 'smppgw_messages_total{account="demo",provider="sim",state="DELIVRD"} 3.0' in metrics
    assert "smppgw_submit_latency_seconds_count 3.0" in metrics
    assert 'smppgw_bound_sessions{account="demo",bind="transceiver"} 1.0' in metrics
    assert 'smppgw_receipt_outbox{account="demo"} 0.0' in metrics
    assert "smppgw_store_commits_total" in metrics
    assert 'demo"' in metrics and "password" not in metrics


@pytest.mark.parametrize("dest, status", [("12", 0x0B), ("38050abc", 0x0B)])
@pytest_twisted.ensureDeferred
async def test_bad_destination_gets_rinvdstadr(gw, dest, status):
    port = smpp_port(gw)

    def scenario():
        esme = connect(port)
        esme.submit(dest=dest)
        assert esme.pump(lambda: esme.resps)
        esme.close()
        return esme.resps[0].status

    assert await deferToThread(scenario) == status


@pytest_twisted.ensureDeferred
async def test_healthz_says_503_and_store_up_0_when_the_store_cannot_take_work(tmp_path):
    app = start_app(tmp_path)

    def get():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{http_port(app)}/healthz", timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code

    def store_up():
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port(app)}/metrics", timeout=5).read()
        return [line for line in text.decode().splitlines() if line.startswith("smppgw_store_up ")]

    try:
        assert await deferToThread(get) == 200
        assert await deferToThread(store_up) == ["smppgw_store_up 1.0"]
        app.store.close()  # the writer thread is gone: nothing could be committed
        assert await deferToThread(get) == 503
        assert await deferToThread(store_up) == ["smppgw_store_up 0.0"]
    finally:
        await app.stop(grace=1.0)
