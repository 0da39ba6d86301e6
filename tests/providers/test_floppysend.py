"""FloppySend: the adapter's real httpx code against the fake on 127.0.0.1, the webhook parser,
and the fake's own contract (case-insensitive names, DLR webhooks and their retries)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import pytest_twisted

from smppgw.config import ProviderSettings
from smppgw.fakes.base import FakeClock
from smppgw.fakes.floppysend import FakeFloppySend
from smppgw.providers.base import (
    DELETED,
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    EXPIRED,
    REJECTED,
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
from smppgw.providers.floppysend import FloppySend
from tests.aio import aio

KEY = "fs-key-7Q2x9w"
OK_NUMBER = "380501234567"


@pytest.fixture
def fake() -> Iterator[FakeFloppySend]:
    with FakeFloppySend(api_key=KEY) as f:
        yield f


def adapter_for(url: str, **options: Any) -> FloppySend:
    return FloppySend(ProviderSettings("floppy", "floppysend", url, {"api_key": KEY, **options}, timeout=2.0))


def sms(number: str = OK_NUMBER, mid: str = "m1", text: str = "Hello", **kw: Any) -> OutboundSms:
    return OutboundSms(mid, kw.pop("source", "Shop"), number, text, **kw)


async def using(adapter: FloppySend, call: Callable[[FloppySend], Any]) -> Any:
    """Run one adapter call, then close its client (httpx must close inside the loop)."""
    try:
        return await call(adapter)
    finally:
        await adapter.close()


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Bounded wait for another thread (the fake's webhook thread)."""
    tick, deadline = threading.Event(), time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the fake's webhook thread"
        tick.wait(0.01)


# -- send ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_posts_the_documented_form_with_the_bare_api_key(fake):
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    msg = sms(text="Привіт", unicode=True, schedule_at=when)
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([msg])))
    [req] = fake.requests
    assert (req.method, req.path) == ("POST", "/sms")
    assert req.headers["x-api-key"] == KEY  # no literal quotes as in the seed's PHP sample
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.form() == {
        "To": [OK_NUMBER],
        "From": ["Shop"],
        "Dcs": ["8"],
        "Text": ["Привіт"],
        "Sched": ["2030-01-02T03:04:05"],
    }
    assert result.ok and result.provider_id in fake.messages
    assert (result.state, result.provider_status) == (ENROUTE, "Sent")


@pytest_twisted.ensureDeferred
async def test_plain_text_sends_dcs_0_without_sched_and_quotes_in_config_are_stripped(fake):
    adapter = adapter_for(fake.url, api_key=f'"{KEY}"')
    [result] = await aio(using(adapter, lambda a: a.send([sms()])))
    assert result.ok
    assert fake.requests[0].headers["x-api-key"] == KEY
    assert fake.requests[0].form() == {"To": [OK_NUMBER], "From": ["Shop"], "Dcs": ["0"], "Text": ["Hello"]}


@pytest_twisted.ensureDeferred
async def test_lowercase_params_and_get_options_send_the_samples_names_in_the_query(fake):
    adapter = adapter_for(fake.url, lowercase_params=True, send_method="GET")
    [result] = await aio(using(adapter, lambda a: a.send([sms()])))
    assert result.ok
    assert fake.requests[0].method == "GET"
    assert fake.requests[0].query == {"to": [OK_NUMBER], "from": ["Shop"], "dcs": ["0"], "text": ["Hello"]}


@pytest_twisted.ensureDeferred
async def test_secret_hash_is_sent_when_configured_and_missing_hash_is_misconfigured():
    with FakeFloppySend(api_key=KEY, secret_hash="hash-5150") as fake:
        [result] = await aio(using(adapter_for(fake.url, secret_hash="hash-5150"), lambda a: a.send([sms()])))
        assert result.ok and fake.requests[0].headers["x-secret-hash"] == "hash-5150"
        with pytest.raises(Misconfigured):
            await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))


@pytest_twisted.ensureDeferred
async def test_invalid_number_is_permanent_rinvdstadr_with_the_code_in_err(fake):
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([sms("380501230001")])))
    assert isinstance(result.error, Permanent) and not result.error.retryable
    assert (result.error.command_status, result.error.err, result.state) == (ESME_RINVDSTADR, "101", REJECTED)


@pytest_twisted.ensureDeferred
async def test_no_balance_refusal_is_submitfail(fake):
    fake.no_balance = True
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))
    assert (result.error.command_status, result.error.err) == (ESME_RSUBMITFAIL, "105")


def failed_body(code: str, desc: str) -> dict:
    item = {"Status": "Failed", "ID": "", "Error_Code": code, "Error_Desc": desc}
    return {"Result": "Failed", "Datainfo": [item]}


@pytest_twisted.ensureDeferred
async def test_unknown_error_code_is_submitfail_and_err_keeps_its_last_three_characters(fake):
    fake.fail_next(200, body=failed_body("9042", "Something odd"))
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))
    assert (result.error.command_status, result.error.err) == (ESME_RSUBMITFAIL, "042")


@pytest_twisted.ensureDeferred
async def test_error_codes_option_overrides_the_description_words(fake):
    fake.fail_next(200, body=failed_body("77", "Invalid destination number"))
    adapter = adapter_for(fake.url, error_codes={"77": ESME_RINVSRCADR})
    [result] = await aio(using(adapter, lambda a: a.send([sms()])))
    assert result.error.command_status == ESME_RINVSRCADR


@pytest_twisted.ensureDeferred
async def test_success_result_with_nonzero_error_code_is_a_failure(fake):
    item = {"Status": "Sent", "ID": "9", "Error_Code": "3", "Error_Desc": "x"}
    fake.fail_next(200, body={"Result": "Success", "Datainfo": [item]})
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))
    assert result.error is not None and result.provider_id is None


@pytest_twisted.ensureDeferred
async def test_failed_result_without_datainfo_raises_permanent(fake):
    fake.fail_next(200, body={"Result": "Failed", "Message": "Sender not approved"})
    with pytest.raises(Permanent) as info:
        await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))
    assert info.value.command_status == ESME_RINVSRCADR and not info.value.retryable


@pytest_twisted.ensureDeferred
async def test_unreadable_200_answer_is_permanent_rsyserr_so_it_is_never_sent_twice(fake):
    fake.fail_next(200, body="<html>ok</html>")
    with pytest.raises(Permanent) as info:
        await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))
    assert info.value.command_status == ESME_RSYSERR and not info.value.retryable


@pytest_twisted.ensureDeferred
async def test_401_is_misconfigured_and_no_text_shows_the_key(fake):
    wrong = "wrong-key-Zz81"
    adapter = FloppySend(ProviderSettings("floppy", "floppysend", fake.url, {"api_key": wrong}))
    assert wrong not in repr(adapter)
    with pytest.raises(Misconfigured) as info:
        await aio(using(adapter, lambda a: a.send([sms()])))
    assert info.value.http_status == 401 and info.value.command_status == ESME_RSYSERR
    assert wrong not in str(info.value) and wrong not in repr(info.value) and wrong not in info.value.detail


@pytest_twisted.ensureDeferred
async def test_a_refusal_that_echoes_the_key_is_scrubbed(fake):
    fake.fail_next(200, body=failed_body("9", f"key {KEY} is disabled"))
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([sms()])))
    assert KEY not in str(result.error) and "<hidden>" in str(result.error)


@pytest_twisted.ensureDeferred
async def test_server_error_is_retryable(fake):
    with pytest.raises(Retryable) as info:
        await aio(using(adapter_for(fake.url), lambda a: a.send([sms("380501230005")])))
    assert info.value.http_status == 502


@pytest_twisted.ensureDeferred
async def test_429_is_retryable_rthrottled_with_retry_after(fake):
    with pytest.raises(Retryable) as info:
        await aio(using(adapter_for(fake.url), lambda a: a.send([sms("380501230004")])))
    assert (info.value.command_status, info.value.retry_after) == (ESME_RTHROTTLED, 2.0)


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_retryable():
    with socket.socket() as s:  # a port nobody listens on once this socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Retryable):
        await aio(using(adapter_for(f"http://127.0.0.1:{port}"), lambda a: a.send([sms()])))


@pytest_twisted.ensureDeferred
async def test_a_silent_server_times_out_as_retryable():
    with socket.socket() as s:  # listens (the kernel completes the handshake) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        adapter = FloppySend(
            ProviderSettings(
                "floppy",
                "floppysend",
                f"http://127.0.0.1:{s.getsockname()[1]}",
                {"api_key": KEY},
                timeout=0.3,
            )
        )
        with pytest.raises(Retryable) as info:
            await aio(using(adapter, lambda a: a.send([sms()])))
    assert "timeout" in str(info.value)


@pytest_twisted.ensureDeferred
async def test_default_batch_size_is_one_recipient_per_request(fake):
    adapter = adapter_for(fake.url)
    assert adapter.limits.batch_size == 1
    results = await aio(using(adapter, lambda a: a.send([sms(mid="a"), sms("380507654321", mid="b")])))
    assert [r.ok for r in results] == [True, True]
    assert [r.form()["To"] for r in fake.requests] == [[OK_NUMBER], ["380507654321"]]


@pytest_twisted.ensureDeferred
async def test_comma_batching_joins_same_text_and_keeps_per_recipient_results(fake):
    bad, other = "380501230001", "380509999999"
    batch = [sms(mid="a"), sms(bad, mid="b"), sms(mid="c", text="Other"), sms(other, mid="d")]
    results = await aio(using(adapter_for(fake.url, batch_size=10), lambda a: a.send(batch)))
    assert [r.form()["To"] for r in fake.requests] == [[f"{OK_NUMBER},{bad},{other}"], [OK_NUMBER]]
    assert [r.message_id for r in results] == ["a", "b", "c", "d"]
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].error.command_status == ESME_RINVDSTADR
    assert len({r.provider_id for r in results if r.ok}) == 3


@pytest_twisted.ensureDeferred
async def test_a_later_group_failing_keeps_the_ids_of_groups_already_sent(fake):
    batch = [sms(mid="a"), sms("380501230004", mid="b", text="Other")]  # the second request gets 429
    results = await aio(using(adapter_for(fake.url, batch_size=10), lambda a: a.send(batch)))
    assert results[0].ok and results[0].provider_id in fake.messages
    assert isinstance(results[1].error, Retryable) and results[1].error.command_status == ESME_RTHROTTLED


@pytest_twisted.ensureDeferred
async def test_overlong_alpha_sender_is_refused_without_a_request(fake):
    [result] = await aio(using(adapter_for(fake.url), lambda a: a.send([sms(source="TwelveLetter")])))
    assert result.error.command_status == ESME_RINVSRCADR and fake.requests == []


@pytest_twisted.ensureDeferred
async def test_balance_reads_amount_and_currency(fake):
    assert await aio(using(adapter_for(fake.url), lambda a: a.balance())) == [Balance(100.0, "USD")]
    assert (fake.requests[0].method, fake.requests[0].path) == ("POST", "/balance")
    assert fake.requests[0].headers["x-api-key"] == KEY


@pytest_twisted.ensureDeferred
async def test_calls_floppysend_lacks_raise_not_supported(fake):
    adapter = adapter_for(fake.url)
    assert adapter.capabilities.webhooks and not adapter.capabilities.poll
    for call in (lambda: adapter.poll(["1"]), adapter.inbound, adapter.senders, lambda: adapter.cancel("1")):
        with pytest.raises(NotSupported):
            await aio(call())
    await aio(adapter.close())
    assert fake.requests == []


# -- parse_webhook ------------------------------------------------------------------------------


@pytest.fixture
def parser() -> FloppySend:
    return adapter_for("http://127.0.0.1:9")  # parse_webhook never touches the network


def hook(body: bytes | str, ctype: str = "text/plain", query: dict | None = None) -> WebhookRequest:
    data = body.encode() if isinstance(body, str) else body
    return WebhookRequest("POST", "/webhooks/floppy", {"content-type": ctype}, query or {}, data)


def test_parse_the_json_text_plain_dlr(parser):
    body = (
        '{"ID":"100001","To":"+380501234567","Status":"Delivered","Error_Code":"0",'
        '"Date":"2027-01-15T08:00:00"}'
    )
    assert parser.parse_webhook(hook(body)) == [
        StatusReport(
            "100001",
            DELIVERED,
            "Delivered",
            "000",
            datetime(2027, 1, 15, 8, tzinfo=UTC),
            destination=OK_NUMBER,
        )
    ]


def test_parse_a_form_encoded_dlr(parser):
    form = "application/x-www-form-urlencoded"
    [report] = parser.parse_webhook(hook("msgid=77&stat=UNDELIV&Error_Code=12", form))
    assert (report.provider_id, report.state, report.err) == ("77", UNDELIVERABLE, "012")


def test_parse_an_smpp_receipt_like_text(parser):
    body = "id:55 sub:001 dlvrd:000 submit date:2401011200 done date:2401011205 stat:REJECTD err:007 text:a:b"
    [report] = parser.parse_webhook(hook(body))
    assert (report.provider_id, report.state, report.err) == ("55", REJECTED, "007")
    assert report.done_at == datetime(2024, 1, 1, 12, 5, tzinfo=UTC)


def test_parse_key_value_lines(parser):
    [report] = parser.parse_webhook(hook("MessageId: 9\nStatus: expired\nDate: 2027-01-15 08:00:00\n"))
    assert (report.provider_id, report.state, report.final) == ("9", EXPIRED, True)


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("Sent", ENROUTE),
        ("Delivered", DELIVERED),
        ("Undelivered", UNDELIVERABLE),
        ("Rejected", REJECTED),
        ("Expired", EXPIRED),
        ("DELIVRD", DELIVERED),
        ("UNDELIV", UNDELIVERABLE),
        ("REJECTD", REJECTED),
        ("EXPIRED", EXPIRED),
        ("ENROUTE", ENROUTE),
        ("DELETED", DELETED),
        ("UNKNOWN", UNKNOWN),
        ("Accepted", ENROUTE),
        ("ACCEPTD", ENROUTE),
        ("Queued", ENROUTE),
        ("Failed", UNDELIVERABLE),
    ],
)
def test_every_status_word_maps_case_insensitively(parser, word, state):
    for variant in (word, word.lower(), word.upper()):
        [report] = parser.parse_webhook(hook(f'{{"ID":"1","Status":"{variant}"}}'))
        assert report.state == state, variant


def test_an_unknown_word_is_unknown_by_default_and_the_option_can_keep_it_enroute(parser):
    [report] = parser.parse_webhook(hook('{"ID":"1","Status":"Mystery"}'))
    assert report.state == UNKNOWN
    patient = adapter_for("http://127.0.0.1:9", unknown_status="ENROUTE")
    [report] = patient.parse_webhook(hook("id=1&status=x"))
    assert report.state == ENROUTE and not report.final


@pytest.mark.parametrize("body", [b"", b" ", b'{"Status":"Sent"}', b"{broken", b"\x00\x01\xff", b"hello"])
def test_unreadable_bodies_raise_value_error(parser, body):
    with pytest.raises(ValueError):
        parser.parse_webhook(hook(body))


def test_an_mo_body_is_inbound(parser):
    [mo] = parser.parse_webhook(hook('{"ID":"m9","From":"+380501112233","To":"14155550100","Text":"STOP"}'))
    assert mo == Inbound("380501112233", "14155550100", "STOP", provider_id="m9")


def test_query_parameters_and_datainfo_lists_are_read_and_parsing_is_pure(parser):
    req = hook("", query={"ID": ["5"], "Status": ["Delivered"]})
    assert [r.state for r in parser.parse_webhook(req)] == [DELIVERED]
    wrapped = hook('{"Datainfo":[{"ID":"1","Status":"Delivered"},{"ID":"2","Status":"Rejected"}]}')
    first = parser.parse_webhook(wrapped)
    assert [(r.provider_id, r.state) for r in first] == [("1", DELIVERED), ("2", REJECTED)]
    assert parser.parse_webhook(wrapped) == first  # FloppySend retries: same body, same answer


# -- the fake -----------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint on 127.0.0.1 that answers `statuses` in turn, then 200.

    Each hit records the fake's clock, so the retry schedule is checked on fake time. Paths
    under /probe always get 200: they mark "everything due before this was attempted".
    """

    def __init__(self, clock: FakeClock, statuses: list[int] | None = None) -> None:
        self.statuses, self.hits, self.probes = list(statuses or []), [], []
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/probe"):
                    recv.probes.append(body)
                    status = 200
                else:
                    recv.hits.append((clock.now(), self.headers.get("Content-Type"), body))
                    status = recv.statuses.pop(0) if recv.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for one, and tests close a receiver each.
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def settle(self, fake: FakeFloppySend) -> None:
        """Return once the fake's webhook thread finished its work for the current clock.

        A probe queued now goes out on a later pass of that thread: after every webhook already
        due, and after a failed one was queued again (the base reads the clock for its retry
        time then, so the clock must not move before).
        """
        n = len(self.probes)
        fake.emit_webhook(f"{self.url}/probe", b"probe")
        wait_for(lambda: len(self.probes) > n)

    def wait_hits(self, fake: FakeFloppySend, count: int) -> None:
        wait_for(lambda: len(self.hits) >= count)
        self.settle(fake)
        assert len(self.hits) == count

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(manual=True)


@pytest.fixture
def receiver(clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Receiver]:
    recv = Receiver(clock, getattr(request, "param", None))
    yield recv
    recv.close()


def post_sms(fake: FakeFloppySend, number: str = OK_NUMBER, **headers: str) -> httpx.Response:
    form = {"to": number, "from": "Shop", "dcs": "0", "text": "Hi"}
    return httpx.post(f"{fake.url}/sms", data=form, headers={"X-api-key": KEY, **headers}, timeout=5)


def test_fake_accepts_parameter_names_in_any_case_by_post_and_get(fake):
    lower = post_sms(fake).json()
    mixed = httpx.get(
        f"{fake.url}/sms",
        params={"TO": OK_NUMBER, "From": "Shop", "Dcs": "8", "tExt": "Hi"},
        headers={"X-api-key": KEY},
        timeout=5,
    ).json()
    for answer in (lower, mixed):
        assert answer["Result"] == "Success"
        assert answer["Datainfo"][0]["Error_Code"] == "0" and answer["Datainfo"][0]["ID"] in fake.messages
    assert mixed["Datainfo"][0]["Status"] == "Sent"


def test_fake_requires_the_exact_key_and_names_a_missing_parameter(fake):
    assert post_sms(fake, **{"X-api-key": f'"{KEY}"'}).status_code == 401
    assert httpx.get(f"{fake.url}/balance", timeout=5).status_code == 401
    answer = httpx.post(f"{fake.url}/sms", data={"To": OK_NUMBER}, headers={"X-api-key": KEY}).json()
    assert answer["Result"] == "Failed" and answer["Datainfo"][0]["Error_Desc"] == "Missing parameter: from"


def test_fake_no_balance_switch_zeroes_the_balance_and_refuses_sends(fake):
    fake.no_balance = True
    answer = httpx.get(f"{fake.url}/balance", headers={"X-api-key": KEY}, timeout=5).json()
    assert answer["Datainfo"] == [{"Balance": "0.00", "Currency": "USD"}]
    assert post_sms(fake).json()["Datainfo"][0]["Error_Desc"] == "Insufficient balance"


def test_fake_from_options_builds_a_working_fake_and_rejects_unknown_options():
    with FakeFloppySend.from_options(0, {"api_key": "k2", "delay": 3.0, "balance": "7.5"}) as fake:
        answer = httpx.get(f"{fake.url}/balance", headers={"X-api-key": "k2"}).json()
        assert (fake.delay, answer["Datainfo"][0]["Balance"]) == (3.0, "7.5")
    with pytest.raises(ValueError, match="colour"):
        FakeFloppySend.from_options(0, {"colour": "red"})


@pytest.mark.parametrize("receiver", [[500]], indirect=True)
def test_fake_posts_a_text_plain_json_dlr_when_final_and_retries_after_a_500(clock, receiver):
    with FakeFloppySend(api_key=KEY, clock=clock, delay=5, webhook_url=f"{receiver.url}/dlr") as fake:
        t0, pid = clock.now(), post_sms(fake).json()["Datainfo"][0]["ID"]
        fake.advance(4.9)
        receiver.settle(fake)
        assert receiver.hits == []  # not final yet on the fake clock
        fake.advance(0.1)
        receiver.wait_hits(fake, 1)
        fake.advance(1)
        receiver.wait_hits(fake, 2)
        fake.advance(5000)
        receiver.settle(fake)
    assert [(round(t - t0, 3), ct) for t, ct, _ in receiver.hits] == [(5, "text/plain"), (6, "text/plain")]
    assert [status for url, _, status in fake.webhooks_sent if url.endswith("/dlr")] == [500, 200]
    assert httpx.Response(200, content=receiver.hits[0][2]).json() == {
        "ID": pid,
        "To": OK_NUMBER,
        "Status": "Delivered",
        "Error_Code": "0",
        "Date": "2027-01-15T08:00:05",
    }


@pytest.mark.parametrize("receiver", [[500] * 10], indirect=True)
def test_fake_retries_at_1_10_300_900_seconds_then_gives_up(clock, receiver):
    with FakeFloppySend(api_key=KEY, clock=clock, delay=0, webhook_url=f"{receiver.url}/dlr") as fake:
        t0 = clock.now()
        post_sms(fake)
        fake.advance(0.001)
        receiver.wait_hits(fake, 1)
        for attempt, gap in enumerate((1, 10, 300, 900), start=2):
            fake.advance(gap - 0.5)
            receiver.settle(fake)
            assert len(receiver.hits) == attempt - 1, f"attempt {attempt} came early"
            fake.advance(0.5)
            receiver.wait_hits(fake, attempt)
        fake.advance(100_000)
        receiver.settle(fake)
    assert [round(t - t0, 3) for t, _, _ in receiver.hits] == [0.001, 1.001, 11.001, 311.001, 1211.001]


@pytest.mark.parametrize("dlr_format", ["json", "form", "kv"])
@pytest.mark.parametrize(
    ("suffix", "state", "err"),
    [
        ("4567", DELIVERED, "000"),
        ("0002", UNDELIVERABLE, "201"),
        ("0006", EXPIRED, "202"),
        ("0007", REJECTED, "203"),
    ],
)
def test_fake_dlrs_round_trip_through_parse_webhook(clock, receiver, parser, dlr_format, suffix, state, err):
    url = f"{receiver.url}/dlr"
    with FakeFloppySend(api_key=KEY, clock=clock, webhook_url=url, dlr_format=dlr_format) as fake:
        pid = post_sms(fake, f"38050123{suffix}").json()["Datainfo"][0]["ID"]
        fake.advance(1)
        wait_for(lambda: len(receiver.hits) == 1)
    [report] = parser.parse_webhook(hook(receiver.hits[0][2], receiver.hits[0][1]))
    assert (report.provider_id, report.state, report.err) == (pid, state, err)
    assert report.destination == f"38050123{suffix}" and report.final


def test_fake_counts_the_delivery_delay_from_sched(clock, receiver):
    with FakeFloppySend(api_key=KEY, clock=clock, delay=1, webhook_url=f"{receiver.url}/dlr") as fake:
        form = {"To": OK_NUMBER, "From": "Shop", "Dcs": "0", "Text": "Hi", "Sched": "2027-01-15T08:01:40"}
        answer = httpx.post(f"{fake.url}/sms", data=form, headers={"X-api-key": KEY}).json()
        assert answer["Result"] == "Success"
        fake.advance(100)  # the fake clock starts at 2027-01-15T08:00:00 UTC
        receiver.settle(fake)
        assert receiver.hits == []
        fake.advance(1)
        receiver.wait_hits(fake, 1)


def test_fake_never_sends_a_final_dlr_for_a_never_final_number(clock, receiver):
    with FakeFloppySend(api_key=KEY, clock=clock, webhook_url=f"{receiver.url}/dlr") as fake:
        post_sms(fake, "380501230003")
        post_sms(fake)
        fake.advance(100_000)
        wait_for(lambda: len(receiver.hits) == 1)  # the ordinary number's DLR
        receiver.settle(fake)
    assert len(receiver.hits) == 1 and b'"Status": "Delivered"' in receiver.hits[0][2]


def test_fake_inbound_round_trips_as_inbound(clock, receiver, parser):
    with FakeFloppySend(api_key=KEY, clock=clock, inbound_url=f"{receiver.url}/mo") as fake:
        mo_id = fake.send_inbound("+380501112233", "14155550100", "STOP")
        wait_for(lambda: len(receiver.hits) == 1)
    [mo] = parser.parse_webhook(hook(receiver.hits[0][2], receiver.hits[0][1]))
    assert mo == Inbound("380501112233", "14155550100", "STOP", provider_id=mo_id, received_at=mo.received_at)
    assert mo.received_at == datetime(2027, 1, 15, 8, tzinfo=UTC)
