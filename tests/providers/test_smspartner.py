"""SMS Partner adapter against its fake, over real HTTP on 127.0.0.1 (no mocks, no sleeps)."""

from __future__ import annotations

import itertools
import json
import logging
import queue
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import pytest_twisted

from smppgw.config import ConfigError, ProviderSettings
from smppgw.fakes.base import FakeClock
from smppgw.fakes.smspartner import FakeSmsPartner
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    UNDELIVERABLE,
    UNKNOWN,
    Balance,
    Inbound,
    Misconfigured,
    NotSupported,
    OutboundSms,
    Permanent,
    Retryable,
    StatusReport,
    WebhookRequest,
)
from smppgw.providers.smspartner import STATUS_TABLE, SmsPartner
from tests.aio import aio

KEY = "sp-key-7f3a9c41d2"  # distinctive, so a leak is easy to spot
DELAY = 5.0
_ids = itertools.count(1)


def sms(destination: str, text: str = "hello", source: str = "MyShop", **kw) -> OutboundSms:
    return OutboundSms(f"gw{next(_ids)}", source, destination, text, **kw)


def hook(body: bytes | str | dict, content_type: str = "application/json") -> WebhookRequest:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    data = data.encode() if isinstance(data, str) else data
    return WebhookRequest("POST", "/webhooks/sp", {"content-type": content_type}, {}, data)


@pytest.fixture
def fake():
    with FakeSmsPartner(api_key=KEY, clock=FakeClock(manual=True), delay=DELAY) as f:
        yield f


@pytest.fixture(scope="module")
def shared_fake():
    """For tests that only use fail_next: a fake's shutdown costs its 0.5 s poll interval."""
    with FakeSmsPartner(api_key=KEY, clock=FakeClock(manual=True), delay=DELAY) as f:
        yield f


@pytest_twisted.async_yield_fixture
async def make():
    made: list[SmsPartner] = []

    def build(url: str, **options) -> SmsPartner:
        settings = ProviderSettings("sp", "smspartner", url, {"api_key": KEY, **options}, timeout=5.0)
        adapter = SmsPartner(settings)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await aio(adapter.close())


class Receiver:
    """A loopback HTTP endpoint standing in for the gateway's webhook URL."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.got.put((self.headers.get("Content-Type", ""), body))
                self.send_response(statuses.pop(0) if statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self) -> WebhookRequest:
        ctype, body = self.got.get(timeout=10)
        return hook(body, ctype)

    def next_retry(self, fake: FakeSmsPartner, step: float) -> WebhookRequest:
        """The fake queues a retry only after it read our answer, so move its clock until one comes."""
        for _ in range(20):
            fake.advance(step)
            try:
                ctype, body = self.got.get(timeout=0.5)
            except queue.Empty:
                continue
            return hook(body, ctype)
        raise AssertionError("no retried webhook")


# -- send ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_posts_the_documented_json_and_maps_the_integer_message_id(fake, make):
    adapter = make(fake.url, dlr_url="http://gw.example/dlr", reply_url="http://gw.example/mo")
    [res] = await aio(adapter.send([sms("33612340010", 'Say "hi"')]))
    [req] = fake.requests
    assert (req.method, req.path, req.headers["content-type"]) == ("POST", "/v1/send", "application/json")
    assert req.json() == {
        "apiKey": KEY,
        "phoneNumbers": "+33612340010",
        "message": 'Say "hi"',
        "sender": "MyShop",
        "urlDlr": "http://gw.example/dlr",
        "urlResponse": "http://gw.example/mo",
    }
    mid = fake.messages[res.provider_id].extra["message_id"]
    assert isinstance(mid, int) and res.provider_id == f"{mid}:33612340010"
    assert res.ok and res.state == ENROUTE


@pytest_twisted.ensureDeferred
async def test_unicode_flag_schedule_slot_and_text_escapes(fake, make):
    adapter = make(fake.url)
    batch = [
        sms("33612340011", "a\nb 10€", unicode=True),
        sms("33612340012", schedule_at=datetime(2035, 1, 15, 8, 2, tzinfo=UTC)),  # 09:02 Paris
        sms("33612340013", schedule_at=datetime(2035, 7, 1, 21, 57, tzinfo=UTC)),
    ]  # 23:57 Paris
    await aio(adapter.send(batch))
    first, winter, summer = (r.json() for r in fake.requests)
    assert first["isUnicode"] == 1 and first["message"] == "a:br:b 10:euro:" and "time" not in first
    assert (winter["scheduledDeliveryDate"], winter["time"], winter["minute"]) == ("15/01/2035", 9, 5)
    assert (summer["scheduledDeliveryDate"], summer["time"], summer["minute"]) == ("02/07/2035", 0, 0)
    assert "isUnicode" not in winter


@pytest_twisted.ensureDeferred
async def test_1200_messages_with_one_text_go_in_three_requests(fake, make):
    batch = [sms(f"3361{2000 + i:06d}") for i in range(1200)]
    results = await aio(make(fake.url).send(batch))
    sizes = [len(r.json()["phoneNumbers"].split(",")) for r in fake.requests]
    assert sizes == [500, 500, 200]
    assert all(r.ok for r in results) and len({r.provider_id for r in results}) == 1200
    assert [r.provider_id.split(":")[1] for r in results] == [m.destination for m in batch]


@pytest_twisted.ensureDeferred
async def test_mixed_texts_senders_and_codings_are_grouped(fake, make):
    batch = [
        sms("33600000010", "A"),
        sms("33600000020", "B"),
        sms("33600000030", "A"),
        sms("33600000040", "A", source="Other"),
        sms("33600000050", "A", unicode=True),
        sms("33600000010", "A"),
    ]  # the same number twice: its own request, so its own id
    results = await aio(make(fake.url).send(batch))
    sent = sorted(
        (r["message"], r.get("sender"), r.get("isUnicode", 0), r["phoneNumbers"])
        for r in (q.json() for q in fake.requests)
    )
    assert sent == [
        ("A", "MyShop", 0, "+33600000010"),
        ("A", "MyShop", 0, "+33600000010,+33600000030"),
        ("A", "MyShop", 1, "+33600000050"),
        ("A", "Other", 0, "+33600000040"),
        ("B", "MyShop", 0, "+33600000020"),
    ]
    mids = [r.provider_id.split(":")[0] for r in results]
    assert mids[0] == mids[2] and len(set(mids)) == 5
    assert [fake.messages[r.provider_id].text for r in results] == [m.text for m in batch]


@pytest_twisted.ensureDeferred
async def test_invalid_number_is_refused_alone_and_the_rest_sent(fake, make):
    adapter = make(fake.url)
    ok1, bad, ok2 = await aio(adapter.send([sms("33612340010"), sms("33612340001"), sms("33612340020")]))
    assert ok1.ok and ok2.ok and ok1.provider_id.split(":")[0] == ok2.provider_id.split(":")[0]
    assert isinstance(bad.error, Permanent) and bad.error.command_status == 0x0B
    assert [r.json()["phoneNumbers"] for r in fake.requests] == [
        "+33612340010,+33612340001,+33612340020",
        "+33612340010,+33612340020",
        "+33612340001",
    ]
    with pytest.raises(Permanent) as exc:
        await aio(adapter.send([sms("33612340001")]))
    assert exc.value.command_status == 0x0B


@pytest_twisted.ensureDeferred
async def test_refusal_naming_no_number_splits_the_request_in_halves(fake, make):
    fake.fail_next(200, body={"success": False, "code": 14, "message": "Number in the STOP list"})
    results = await aio(make(fake.url).send([sms(f"3361234{i:04d}") for i in range(10, 14)]))
    assert all(r.ok for r in results)
    assert [len(r.json()["phoneNumbers"].split(",")) for r in fake.requests] == [4, 2, 2]


ERRORS = [
    (1, None, Misconfigured, 0x08),
    (2, None, Permanent, 0x0B),
    (10, None, Misconfigured, 0x08),
    (11, None, Permanent, 0x45),
    (13, None, Permanent, 0x0B),
    (14, None, Permanent, 0x45),
    (15, None, Permanent, 0x45),
    (20, None, Misconfigured, 0x08),
    (22, None, Permanent, 0x61),
    (23, None, Permanent, 0x61),
    (30, None, Misconfigured, 0x08),
    (77, None, Permanent, 0x45),
    (9, "phoneNumbers", Permanent, 0x0B),
    (9, "sender", Permanent, 0x0A),
    (9, "message", Permanent, 0x01),
    (9, "scheduledDeliveryDate", Permanent, 0x61),
    (9, "minute", Permanent, 0x61),
]


@pytest.mark.parametrize("http", [200, 400])
@pytest.mark.parametrize(("code", "field", "kind", "status"), ERRORS)
@pytest_twisted.ensureDeferred
async def test_error_code_table(shared_fake, make, http, code, field, kind, status):
    fake = shared_fake
    body = {"success": False, "code": code, "message": "refused"}
    if field:
        errors = [{"elementId": f"children[{field}].data", "message": "bad"}]
        body = {"success": False, "code": 9, "errors": errors}
    fake.fail_next(http, body=body)
    with pytest.raises(kind) as exc:
        await aio(make(fake.url).send([sms("33612340010")]))
    assert type(exc.value) is kind or kind is Permanent
    assert (exc.value.command_status, exc.value.err) == (status, f"{code:03d}")


@pytest_twisted.ensureDeferred
async def test_no_balance_refuses_with_the_configured_status(fake, make):
    fake.no_balance = True
    with pytest.raises(Permanent) as exc:
        await aio(make(fake.url, no_credit_status=0x401).send([sms("33612340010")]))
    assert exc.value.command_status == 0x401
    assert await aio(make(fake.url).balance()) == [Balance(0.0, "EUR"), Balance(0.0, "SMS")]


@pytest_twisted.ensureDeferred
async def test_wrong_key_is_misconfigured_and_the_key_is_never_shown(fake, make, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-key-93be21"
    adapter = make(fake.url, api_key=secret)
    for call in (adapter.send([sms("33612340010")]), adapter.balance(), adapter.poll(["301:33612340010"])):
        with pytest.raises(Misconfigured) as exc:
            await aio(call)
        assert secret not in str(exc.value) and secret not in repr(exc.value)
    fake.fail_next(401, body={"success": False, "code": 10, "message": "Invalid API key"})
    with pytest.raises(Misconfigured):
        await aio(make(fake.url).balance())
    fake.fail_next(200, body={"success": False, "code": 10, "message": f"Invalid API key {KEY}"})
    with pytest.raises(Misconfigured) as exc:  # even a provider echoing the key is scrubbed
        await aio(make(fake.url).send([sms("33612340010")]))
    assert KEY not in str(exc.value)
    assert fake.requests[1].query["apiKey"] == [secret]  # the key did go out, in the query string
    assert secret not in caplog.text and KEY not in caplog.text and secret not in repr(adapter)


@pytest_twisted.ensureDeferred
async def test_5xx_429_and_connection_refused_are_retryable(fake, make):
    adapter = make(fake.url)
    with pytest.raises(Retryable) as exc:
        await aio(adapter.send([sms("33612340005")]))
    assert exc.value.http_status == 503
    with pytest.raises(Retryable) as exc:
        await aio(adapter.send([sms("33612340004")]))
    assert (exc.value.command_status, exc.value.retry_after) == (0x58, 2.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    for call in (make(dead).send([sms("33612340010")]), make(dead).balance()):
        with pytest.raises(Retryable) as exc:
            await aio(call)
        assert KEY not in str(exc.value)


@pytest_twisted.ensureDeferred
async def test_throttling_stops_the_batch_but_keeps_earlier_ids(fake, make):
    adapter = make(fake.url)
    ok, throttled = await aio(adapter.send([sms("33612340010", "A"), sms("33612340004", "B")]))
    assert ok.ok and isinstance(throttled.error, Retryable)
    with pytest.raises(Retryable):  # the first request failed: the rest are not even tried
        await aio(adapter.send([sms("33612340004", "B"), sms("33612340010", "A")]))
    assert len(fake.requests) == 3


@pytest_twisted.ensureDeferred
async def test_unreadable_answers_permanent_for_send_retryable_for_reads(fake, make):
    adapter = make(fake.url)
    fake.fail_next(200, body="<html>maintenance</html>", count=2)
    with pytest.raises(Permanent):  # the messages may have gone out: no retry
        await aio(adapter.send([sms("33612340010")]))
    with pytest.raises(Retryable):
        await aio(adapter.balance())


# -- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("Waiting", ENROUTE),
        ("Delivered", DELIVERED),
        ("Not delivered", UNDELIVERABLE),
        ("DELIVERED", DELIVERED),
        ("Livré", DELIVERED),
        ("Non livré", UNDELIVERABLE),
        ("En attente", ENROUTE),
    ],
)
@pytest_twisted.ensureDeferred
async def test_status_table_maps_every_word(make, word, state):
    [report] = make("http://127.0.0.1:9").parse_webhook(
        hook({"messageId": 7, "phoneNumber": "+33612340010", "status": word})
    )
    assert (report.provider_id, report.state, report.provider_status) == ("7:33612340010", state, word)
    assert {"waiting", "delivered", "not delivered"} <= set(STATUS_TABLE)


@pytest_twisted.ensureDeferred
async def test_unknown_status_word_follows_the_option(make):
    body = hook({"messageId": 7, "phoneNumber": "+33612340010", "statut": "Bounced"})
    assert make("http://127.0.0.1:9").parse_webhook(body)[0].state == ENROUTE
    assert make("http://127.0.0.1:9", unknown_status="UNKNOWN").parse_webhook(body)[0].state == UNKNOWN


@pytest_twisted.ensureDeferred
async def test_status_progression_on_the_fake_clock(fake, make):
    adapter = make(fake.url)
    numbers = ["33612340010", "33612340002", "33612340003", "33612340006", "33612340007"]
    ids = [r.provider_id for r in await aio(adapter.send([sms(n) for n in numbers]))]
    assert {r.state for r in await aio(adapter.poll(ids))} == {ENROUTE}
    fake.advance(DELAY - 0.5)
    assert {r.provider_status for r in await aio(adapter.poll(ids))} == {"Waiting"}
    fake.advance(0.5)
    reports = {r.provider_id: r for r in await aio(adapter.poll(ids))}
    states = [reports[i].state for i in ids]
    assert states == [DELIVERED, UNDELIVERABLE, ENROUTE, UNDELIVERABLE, UNDELIVERABLE]
    assert reports[ids[0]].done_at == datetime.fromtimestamp(fake.clock.now(), UTC)


@pytest_twisted.ensureDeferred
async def test_poll_one_reads_statut_many_read_status(fake, make):
    adapter = make(fake.url)
    ids = [r.provider_id for r in await aio(adapter.send([sms("33612340010"), sms("33612340002")]))]
    fake.advance(DELAY)
    [one] = await aio(adapter.poll(ids[:1]))  # message-status: "statut", number as 06…
    assert (one.provider_id, one.state, one.destination) == (ids[0], DELIVERED, "33612340010")
    mid, number = ids[0].split(":")
    assert fake.requests[-1].query == {"apiKey": [KEY], "messageId": [mid], "phoneNumber": ["+" + number]}
    two = await aio(adapter.poll(ids))  # multi-status: "status"
    assert [(r.provider_id, r.state) for r in two] == [(ids[0], DELIVERED), (ids[1], UNDELIVERABLE)]
    wanted = [{"phoneNumber": "+" + i.split(":")[1], "messageId": int(i.split(":")[0])} for i in ids]
    assert fake.requests[-1].path == "/v1/multi-status"
    assert fake.requests[-1].json() == {"apiKey": KEY, "SMSStatut_List": wanted}
    swapped = {"success": True, "code": 200, "number": "+" + number, "messageId": mid, "status": "Delivered"}
    fake.fail_next(200, body=swapped)
    assert (await aio(adapter.poll(ids[:1])))[0].state == DELIVERED
    fake.fail_next(
        200,
        body={
            "success": True,
            "code": 200,
            "StatutResponse_List": [
                {"phoneNumber": "+" + number, "messageId": int(mid), "statut": "Not delivered"}
            ],
        },
    )
    assert [(r.provider_id, r.state) for r in await aio(adapter.poll(ids))] == [(ids[0], UNDELIVERABLE)]


@pytest_twisted.ensureDeferred
async def test_poll_leaves_out_unknown_ids(fake, make):
    adapter = make(fake.url)
    [res] = await aio(adapter.send([sms("33612340010")]))
    reports = await aio(adapter.poll([res.provider_id, "999:33600000000"]))
    assert [r.provider_id for r in reports] == [res.provider_id]
    assert await aio(adapter.poll(["999:33600000000"])) == []


# -- webhooks -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_dlr_and_reply_webhooks_json_and_form(make):
    adapter = make("http://127.0.0.1:9", reply_destination="36111")
    delivered = {
        "messageId": 307,
        "phoneNumber": "+33612345678",
        "status": "Delivered",
        "date": "2015-02-07 22:39:46",
        "stopSms": False,
    }
    [dlr] = adapter.parse_webhook(hook(delivered))
    assert dlr == StatusReport(
        "307:33612345678",
        DELIVERED,
        "Delivered",
        "000",
        datetime(2015, 2, 7, 21, 39, 46, tzinfo=UTC),
        destination="33612345678",
    )
    [form] = adapter.parse_webhook(
        hook("message_id=307&number=0612345678&statut=Not+delivered", "application/x-www-form-urlencoded")
    )
    assert (form.provider_id, form.state) == ("307:33612345678", UNDELIVERABLE)
    [mo] = adapter.parse_webhook(
        hook({"type": "response", "phone_number": "+33612345678", "text": "test", "message_id": 1111111})
    )
    assert (mo.source, mo.destination, mo.text) == ("33612345678", "36111", "test")
    assert "1111111" in mo.provider_id
    [stop] = adapter.parse_webhook(hook({"type": "stop", "phone_number": "+33612345678"}))
    assert stop.text == "STOP"
    long = {
        "msisdn": "33612345678",
        "to": "33700000000",
        "messageId": "abc",
        "text": "Test",
        "type": "text",
        "keyword": "TEST",
        "message-timestamp": "2016-03-10 09:51:46",
    }
    assert adapter.parse_webhook(hook(long)) == [
        Inbound("33612345678", "33700000000", "Test", "abc", datetime(2016, 3, 10, 9, 51, 46, tzinfo=UTC))
    ]


@pytest.mark.parametrize(
    "body", [b"not json {", b"{}", b"[1, 2]", b'{"foo": 1}', b"plain words", b'{"status": "x"}']
)
@pytest_twisted.ensureDeferred
async def test_unreadable_webhooks_raise_valueerror(make, body):
    with pytest.raises(ValueError):
        make("http://127.0.0.1:9").parse_webhook(hook(body, "text/plain"))


@pytest_twisted.ensureDeferred
async def test_fake_posts_dlr_to_urldlr_with_retries_and_replies(fake, make):
    receiver = Receiver(statuses=[500])
    fake.reply_url = receiver.url
    adapter = make(fake.url, dlr_url=receiver.url)
    [res] = await aio(adapter.send([sms("33612340010")]))
    fake.advance(DELAY)
    assert receiver.next().body  # first attempt: answered 500
    [report] = adapter.parse_webhook(receiver.next_retry(fake, 1.0))  # the base class retries after 1 s
    assert (report.provider_id, report.state) == (res.provider_id, DELIVERED)
    fake.add_reply("+33612340010", "yes please", message_id=301)
    [mo] = adapter.parse_webhook(receiver.next())
    assert (mo.source, mo.text) == ("33612340010", "yes please")
    fake.add_reply("+33612340010", "a long answer", to="33700000000", parts=2, form=True)
    first, second = receiver.next(), receiver.next()
    assert adapter.parse_webhook(first) == []  # waiting for the other part
    [joined] = adapter.parse_webhook(second)
    assert (joined.text, joined.destination) == ("a long answer", "33700000000")


# -- account ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_balance_reads_credits(fake, make):
    assert await aio(make(fake.url).balance()) == [Balance(10225.119, "EUR"), Balance(269082.0, "SMS")]
    assert (fake.requests[0].method, fake.requests[0].path, fake.requests[0].query) == (
        "GET",
        "/v1/me",
        {"apiKey": [KEY]},
    )


@pytest_twisted.ensureDeferred
async def test_fake_from_options_checks_the_configured_key(make):
    with FakeSmsPartner.from_options(0, {"api_key": "other-key", "delay": "2", "manual_clock": True}) as fake:
        assert (fake.delay, fake.clock.manual) == (2.0, True)
        with pytest.raises(Misconfigured):
            await aio(make(fake.url).balance())
        assert (await aio(make(fake.url, api_key="other-key").balance()))[0].currency == "EUR"


@pytest_twisted.ensureDeferred
async def test_cancel_scheduled_request(fake, make):
    adapter = make(fake.url + "/v1/")  # the documented base URL works too
    at = datetime(2035, 1, 15, 8, 0, tzinfo=UTC)
    batch = [sms("33612340010", schedule_at=at), sms("33612340020", schedule_at=at)]
    first, second = await aio(adapter.send(batch))
    assert len(fake.requests_to("POST", "/v1/send")) == 2  # scheduled: one request each, so one id each
    assert await aio(adapter.cancel(first.provider_id)) is True
    assert fake.requests[-1].query == {"apiKey": [KEY], "messageId": [first.provider_id.split(":")[0]]}
    assert await aio(adapter.cancel(first.provider_id)) is False  # code 5: already cancelled
    [now] = await aio(adapter.send([sms("33612340030")]))
    assert await aio(adapter.cancel(now.provider_id)) is False  # code 7: already sent
    with pytest.raises(Permanent) as exc:
        await aio(adapter.cancel("999:33612340010"))
    assert exc.value.command_status == 0x0C
    assert await aio(adapter.poll([second.provider_id, first.provider_id])) != []


@pytest_twisted.ensureDeferred
async def test_config_and_unsupported_calls(make):
    with pytest.raises(ConfigError, match="api_key"):
        SmsPartner(ProviderSettings("sp", "smspartner", "", {}))
    adapter = make("")
    assert adapter.limits.batch_size == 500 and adapter.limits.poll_batch_size == 500
    assert KEY not in repr(adapter) and "api.smspartner.fr" in repr(adapter)
    for call in (adapter.senders(), adapter.inbound()):
        with pytest.raises(NotSupported):
            await aio(call)
