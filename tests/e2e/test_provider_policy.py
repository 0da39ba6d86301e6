"""Delivery policy over real sockets: webhook authentication and idempotency, MO delivery,
ack = "provider", failover when a provider is down."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest_twisted
from twisted.internet.threads import deferToThread

from smppgw.fakes.floppysend import FakeFloppySend
from smppgw.fakes.smsclub import FakeSmsClub
from smppgw.fakes.smsend import FakeSmSend
from smppgw.fakes.smspartner import FakeSmsPartner
from tests.e2e.harness import connect, http_port, receipt_fields, smpp_port, start_app

SECRET = "hook-s3cret"


def post(url: str, body: bytes, headers: dict | None = None) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_until(cond, timeout: float = 10.0) -> bool:
    """Wait (in an ESME thread) for something another thread does; bounded."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes


@pytest_twisted.ensureDeferred
async def test_webhook_needs_its_secret_and_a_repeated_report_gives_one_receipt(tmp_path):
    fake = FakeFloppySend(api_key="k", delay=0.1).start()  # no webhook_url: the test posts itself
    app = start_app(
        tmp_path,
        providers={
            "fl": {"type": "floppysend", "url": fake.url, "api_key": "k", "webhook_secret": SECRET},
            "open": {"type": "floppysend", "url": fake.url, "api_key": "k"},
        },
        routes=[{"providers": ["fl"]}],
    )
    base = f"http://127.0.0.1:{http_port(app)}/webhooks"
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        esme.submit(dest="380671231111")
        assert esme.pump(lambda: esme.resps)
        assert wait_until(lambda: fake.messages)  # the send reaches the fake after the ack
        pid = next(iter(fake.messages))
        report = json.dumps(
            {"ID": pid, "To": "380671231111", "Status": "Delivered", "Error_Code": "0"}
        ).encode()
        codes = {
            "no secret": post(f"{base}/fl", report),
            "wrong secret": post(f"{base}/fl/nope", report),
            "no config": post(f"{base}/open", report),
            "unknown provider": post(f"{base}/nobody/{SECRET}", report),
            "unreadable": post(f"{base}/fl/{SECRET}", b"\x00\x01 nothing here"),
            "header secret": post(f"{base}/fl", report, {"X-Webhook-Secret": SECRET}),
            "repeat": post(f"{base}/fl/{SECRET}", report),
        }
        esme.pump(lambda: False, timeout=1.0)  # a second receipt would arrive now
        esme.close()
        return codes, esme

    try:
        codes, esme = await deferToThread(scenario)
        assert codes == {
            "no secret": 401,
            "wrong secret": 401,
            "no config": 403,
            "unknown provider": 404,
            "unreadable": 400,
            "header secret": 200,
            "repeat": 200,
        }
        assert [receipt_fields(r)["stat"] for r in esme.receipts] == ["DELIVRD"]
    finally:
        await app.stop(grace=1.0)
        fake.stop()


@pytest_twisted.ensureDeferred
async def test_webhook_allowlist_refuses_other_sources(tmp_path):
    fake = FakeFloppySend(api_key="k").start()
    app = start_app(
        tmp_path,
        providers={
            "fl": {"type": "floppysend", "url": fake.url, "api_key": "k", "webhook_allow": ["10.0.0.0/8"]}
        },
    )
    url = f"http://127.0.0.1:{http_port(app)}/webhooks/fl"
    try:
        code = await deferToThread(post, url, b'{"ID":"1","Status":"Delivered"}')
        assert code == 403
    finally:
        await app.stop(grace=1.0)
        fake.stop()


@pytest_twisted.ensureDeferred
async def test_mo_from_polling_and_from_webhook_reach_the_account_owning_the_number(tmp_path):
    smsend = FakeSmSend(username="u", password="p").start()
    partner = FakeSmsPartner(api_key="k").start()
    app = start_app(
        tmp_path,
        providers={
            "se": {
                "type": "smsend",
                "url": smsend.url,
                "username": "u",
                "password": "p",
                "inbound_interval": 0.2,
            },
            "sp": {
                "type": "smspartner",
                "url": partner.url,
                "api_key": "k",
                "webhook_secret": SECRET,
                "reply_destination": "36180",
            },
            "sim": {"type": "simulator", "delay": 0},
        },
        routes=[{"providers": ["sim"]}],
        inbound=[{"account": "demo", "numbers": ["393400000001", "36180"]}],
    )
    smsend.add_inbound(sender="+393471234567", message="hello from Italy", id_sim="+393400000001")
    partner.add_reply(
        "33612345678",
        "oui merci",
        message_id=77,
        url=f"http://127.0.0.1:{http_port(app)}/webhooks/sp/{SECRET}",
    )
    port = smpp_port(app)

    def scenario():
        esme = connect(port, kind="receiver")
        esme.pump(lambda: len(esme.other) >= 2, timeout=10)
        esme.pump(lambda: False, timeout=0.5)  # the next inbound poll must not bring it again
        esme.close()
        return esme

    try:
        esme = await deferToThread(scenario)
        got = sorted(
            (p.source_addr.decode(), p.destination_addr.decode(), p.short_message.decode())
            for p in esme.other
        )
        assert got == [
            ("33612345678", "36180", "oui merci"),
            ("393471234567", "393400000001", "hello from Italy"),
        ]
        assert all(p.esm_class == 0 and p.data_coding == 0 for p in esme.other)
    finally:
        await app.stop(grace=1.0)
        smsend.stop()
        partner.stop()


@pytest_twisted.ensureDeferred
async def test_ack_provider_mode_answers_with_the_providers_verdict(tmp_path):
    fake = FakeSmsClub(token="t", rate_limit=None, delay=0.1).start()
    app = start_app(
        tmp_path,
        accounts={"demo": {"password": "demo", "ack": "provider"}},
        providers={"club": {"type": "smsclub", "url": fake.url, "token": "t", "poll_first": 0.2}},
    )
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        for dest in ("380671230000", "380671230001"):  # ...0001: the provider refuses the number
            esme.client.send_message(
                source_addr_ton=5,
                source_addr="VashZakaz",
                dest_addr_ton=1,
                destination_addr=dest,
                short_message=b"x",
                registered_delivery=1,
            )
        assert esme.pump(lambda: len(esme.resps) == 2)
        esme.pump(lambda: len(esme.receipts) >= 1, timeout=10)
        esme.pump(lambda: False, timeout=0.5)
        esme.close()
        return esme

    try:
        esme = await deferToThread(scenario)
        by_seq = sorted(esme.resps, key=lambda p: p.sequence)
        assert [p.status for p in by_seq] == [0, 0x0B]
        assert [receipt_fields(r)["stat"] for r in esme.receipts] == ["DELIVRD"]  # none for the refused one
    finally:
        await app.stop(grace=1.0)
        fake.stop()


def down_then_sim(tmp_path, **dispatch):
    """A gateway whose route tries a provider nobody answers for, then the simulator."""
    return start_app(
        tmp_path,
        providers={
            "down": {"type": "smsclub", "url": f"http://127.0.0.1:{closed_port()}", "token": "t"},
            "sim": {"type": "simulator", "delay": 0},
        },
        routes=[{"providers": ["down", "sim"]}],
        dispatch=dispatch,
    )


@pytest_twisted.ensureDeferred
async def test_messages_fail_over_to_the_next_provider_when_the_first_is_down(tmp_path):
    app = down_then_sim(tmp_path, max_attempts=2, retry_initial=0.05, retry_max=0.1, breaker_threshold=100)
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        for _ in range(3):
            esme.submit()
        ok = esme.pump(lambda: len(esme.receipts) == 3, timeout=15)
        esme.close()
        return ok, esme

    try:
        ok, esme = await deferToThread(scenario)
        assert ok
        assert {receipt_fields(r)["stat"] for r in esme.receipts} == {"DELIVRD"}
        text = app.metrics.exposition().decode()
        assert 'smppgw_messages_total{account="demo",provider="sim",state="DELIVRD"} 3.0' in text
        assert 'smppgw_provider_requests_total{call="send",outcome="retryable",provider="down"}' in text
    finally:
        await app.stop(grace=1.0)


@pytest_twisted.ensureDeferred
async def test_a_provider_whose_breaker_opened_shows_circuit_open_1_on_metrics(tmp_path):
    app = down_then_sim(tmp_path, max_attempts=5, retry_initial=0.01, retry_max=0.02, breaker_threshold=2)
    port, http = smpp_port(app), http_port(app)

    def scenario():
        esme = connect(port)
        esme.submit()
        ok = esme.pump(lambda: len(esme.receipts) == 1, timeout=15)  # via sim, once down's breaker opened
        esme.close()
        text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
        return ok, [line for line in text.splitlines() if line.startswith("smppgw_provider_circuit_open")]

    try:
        ok, circuit = await deferToThread(scenario)
        assert ok
        assert sorted(circuit) == [
            'smppgw_provider_circuit_open{provider="down"} 1.0',
            'smppgw_provider_circuit_open{provider="sim"} 0.0',
        ]
    finally:
        await app.stop(grace=1.0)


@pytest_twisted.ensureDeferred
async def test_least_cost_route_takes_the_provider_whose_published_price_is_lower(tmp_path):
    from smppgw.fakes.smsfly import FakeSmsFly

    fly = FakeSmsFly(api_key="k", delay=0.1).start()  # publishes 255-03 at 0.477, 255-01 at 0.478
    app = start_app(
        tmp_path,
        providers={
            "flat": {"type": "simulator", "delay": 0, "prices": {"380": 0.4775}},
            "fly": {
                "type": "smsfly",
                "url": fly.url + "/api/v2/api.php",
                "api_key": "k",
                "poll_first": 0.2,
                "networks": {"38050": "255-01", "38067": "255-03"},
            },
        },
        routes=[{"providers": ["flat", "fly"], "strategy": "least-cost"}],
    )
    port = smpp_port(app)

    def scenario():
        assert wait_until(lambda: "fly" in app.gateway.prices.published)
        esme = connect(port)
        for dest in ("380671230000", "380501230000"):
            esme.client.send_message(
                source_addr_ton=5,
                source_addr="InfoCenter",
                dest_addr_ton=1,
                destination_addr=dest,
                short_message=b"x",
                registered_delivery=1,
            )
        ok = esme.pump(lambda: len(esme.receipts) == 2, timeout=10)
        esme.close()
        return ok

    try:
        assert await deferToThread(scenario)
        assert [m.destination for m in fly.messages.values()] == ["380671230000"]  # 0.477 beats 0.4775
        text = app.metrics.exposition().decode()
        assert 'smppgw_messages_total{account="demo",provider="flat",state="DELIVRD"} 1.0' in text
    finally:
        await app.stop(grace=1.0)
        fly.stop()


@pytest_twisted.ensureDeferred
async def test_strict_senders_refuse_a_source_the_provider_does_not_list(tmp_path):
    fake = FakeSmsClub(token="t", rate_limit=None, delay=0.1).start()  # lists VashZakaz, test1, test2
    app = start_app(
        tmp_path,
        accounts={"demo": {"password": "demo", "strict_senders": True}},
        providers={"club": {"type": "smsclub", "url": fake.url, "token": "t", "poll_first": 0.2}},
    )
    port = smpp_port(app)

    def scenario():
        assert wait_until(lambda: "club" in app.gateway.chores.senders)
        esme = connect(port)
        for source in ("VashZakaz", "Unlisted"):
            esme.client.send_message(
                source_addr_ton=5,
                source_addr=source,
                dest_addr_ton=1,
                destination_addr="380671230000",
                short_message=b"x",
            )
        assert esme.pump(lambda: len(esme.resps) == 2)
        esme.close()
        return sorted(esme.resps, key=lambda p: p.sequence)

    try:
        resps = await deferToThread(scenario)
        assert [p.status for p in resps] == [0, 0x0A]
    finally:
        await app.stop(grace=1.0)
        fake.stop()


@pytest_twisted.ensureDeferred
async def test_a_message_with_no_final_status_by_the_horizon_gets_a_final_unknown_receipt(tmp_path):
    fake = FakeSmsClub(token="t", rate_limit=None, delay=0.1).start()  # ...0003: never final there
    app = start_app(
        tmp_path,
        providers={"club": {"type": "smsclub", "url": fake.url, "token": "t", "poll_first": 0.2}},
        dispatch={"status_horizon": 1.5},
    )
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        esme.client.send_message(
            source_addr_ton=5,
            source_addr="VashZakaz",
            dest_addr_ton=1,
            destination_addr="380671230003",
            short_message=b"x",
            registered_delivery=1,
        )
        ok = esme.pump(lambda: esme.receipts, timeout=10)
        esme.close()
        return ok, esme

    try:
        ok, esme = await deferToThread(scenario)
        assert ok
        (receipt,) = esme.receipts
        assert receipt_fields(receipt)["stat"] == "UNKNOWN" and receipt.message_state == 7
        assert len(fake.requests_to("POST", "/sms/status")) >= 1  # it was polled before giving up
    finally:
        await app.stop(grace=1.0)
        fake.stop()
