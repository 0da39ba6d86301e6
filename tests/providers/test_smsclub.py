"""SMS Club adapter against the SMS Club fake, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import pytest_twisted

from smppgw.config import ConfigError, ProviderSettings
from smppgw.fakes.base import FakeClock
from smppgw.fakes.smsclub import FakeSmsClub
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    ESME_RTHROTTLED,
    EXPIRED,
    REJECTED,
    UNDELIVERABLE,
    UNKNOWN,
    Balance,
    Misconfigured,
    NotSupported,
    OutboundSms,
    Permanent,
    Retryable,
    WebhookRequest,
)
from smppgw.providers.smsclub import SmsClub
from tests.aio import aio

TOKEN = "sk-club-7f3a9c1e5b2d4f60"
DELAY = 60.0
OK = "380989361131"


def settings(url: str, timeout: float = 2.0, **options: object) -> ProviderSettings:
    # Local pacing is off unless a test is about it: it would make tests wait.
    opts = {"token": TOKEN, "requests_per_second": 0, **options}
    return ProviderSettings(name="club", type="smsclub", url=url, options=opts, timeout=timeout)


def sms(destination: str = OK, message_id: str = "gw-1", **fields: object) -> OutboundSms:
    values: dict = {
        "message_id": message_id,
        "source": "VashZakaz",
        "destination": destination,
        "text": "test text",
    }
    values.update(fields)
    return OutboundSms(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(manual=True)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeSmsClub]:
    with FakeSmsClub(token=TOKEN, clock=clock, delay=DELAY, rate_limit=None) as f:
        yield f  # type: ignore[misc]


@pytest_twisted.async_yield_fixture
async def make(fake: FakeSmsClub):
    """Build adapters pointed at the fake (or at `url`); all are closed after the test."""
    made: list[SmsClub] = []

    def build(url: str | None = None, timeout: float = 2.0, **options: object) -> SmsClub:
        made.append(SmsClub(settings(url or fake.url, timeout, **options)))
        return made[-1]

    yield build
    for adapter in made:
        await aio(adapter.close())


def sends(fake: FakeSmsClub) -> list:
    return fake.requests_to("POST", "/sms/send")


# -- send ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_posts_the_documented_json_with_the_bearer_token(fake, make):
    [result] = await aio(make().send([sms()]))

    [req] = fake.requests
    assert (req.method, req.path) == ("POST", "/sms/send")
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["content-type"].startswith("application/json")
    assert req.json() == {"phone": [OK], "message": "test text", "src_addr": "VashZakaz"}
    [(provider_id, msg)] = fake.messages.items()
    assert (result.message_id, result.provider_id, result.state) == ("gw-1", provider_id, ENROUTE)
    assert result.ok and msg.destination == OK


@pytest_twisted.ensureDeferred
async def test_integration_id_is_sent_when_configured(fake, make):
    await aio(make(integration_id="ref-42").send([sms()]))

    assert fake.requests[0].json()["integration_id"] == "ref-42"


@pytest_twisted.ensureDeferred
async def test_250_messages_with_one_text_go_in_three_requests_of_at_most_100(fake, make):
    batch = [sms(f"3809900{n:05d}", f"gw-{n}") for n in range(1000, 1250)]

    results = await aio(make().send(batch))

    assert [len(r.json()["phone"]) for r in sends(fake)] == [100, 100, 50]
    assert all(r.ok for r in results)
    # every provider id is the one the fake gave to that very number
    assert [fake.messages[r.provider_id].destination for r in results] == [m.destination for m in batch]


@pytest_twisted.ensureDeferred
async def test_messages_are_grouped_by_sender_and_text(fake, make):
    batch = [
        sms("380990001111", "a", text="one"),
        sms("380990002222", "b", text="two"),
        sms("380990003333", "c", text="one"),
    ]

    results = await aio(make().send(batch))

    assert sorted((r.json()["message"], r.json()["phone"]) for r in sends(fake)) == [
        ("one", ["380990001111", "380990003333"]),
        ("two", ["380990002222"]),
    ]
    assert [fake.messages[r.provider_id].text for r in results] == ["one", "two", "one"]


@pytest_twisted.ensureDeferred
async def test_partial_success_gives_per_message_errors_from_add_info(fake, make):
    fake.blacklist.add("380990002222")
    batch = [sms("380990000001", "bad"), sms("380990002222", "black"), sms(OK, "good")]

    bad, black, good = await aio(make().send(batch))

    assert len(sends(fake)) == 1
    assert good.ok and fake.messages[good.provider_id].destination == OK
    assert isinstance(bad.error, Permanent)
    assert (bad.error.command_status, bad.error.err) == (ESME_RINVDSTADR, "001")
    assert (black.error.command_status, black.error.err) == (ESME_RSUBMITFAIL, "002")


@pytest_twisted.ensureDeferred
async def test_all_numbers_refused_reads_the_empty_info_array(fake, make):
    [result] = await aio(make().send([sms("380990000001")]))

    assert result.error.command_status == ESME_RINVDSTADR


@pytest_twisted.ensureDeferred
async def test_local_checks_refuse_bad_number_and_empty_text_without_a_request(fake, make):
    bad_number, empty = await aio(make().send([sms("+38099 123", "a"), sms(OK, "b", text="")]))

    assert fake.requests == []
    assert bad_number.error.command_status == ESME_RINVDSTADR
    assert empty.error.command_status == ESME_RINVMSGLEN


@pytest_twisted.ensureDeferred
async def test_check_senders_refuses_an_unknown_source_with_rinvsrcadr(fake, make):
    adapter = make(check_senders=True)

    ok, refused = await aio(adapter.send([sms(message_id="a"), sms(message_id="b", source="Nobody")]))
    await aio(adapter.send([sms("380990002222", "c")]))

    assert ok.ok and refused.error.command_status == ESME_RINVSRCADR
    assert len(fake.requests_to("POST", "/sms/originator")) == 1  # cached
    assert [r.json()["src_addr"] for r in sends(fake)] == ["VashZakaz", "VashZakaz"]


@pytest_twisted.ensureDeferred
async def test_http_400_is_permanent_rsubmitfail(fake, make):
    with pytest.raises(Permanent) as e:
        await aio(make().send([sms(source="NotMine")]))  # the fake refuses unknown alpha names

    assert (e.value.http_status, e.value.command_status, e.value.err) == (400, ESME_RSUBMITFAIL, "400")


@pytest_twisted.ensureDeferred
async def test_401_is_misconfigured_and_the_token_shows_nowhere(fake, make, caplog):
    caplog.set_level(logging.DEBUG)
    fake.token = "another-token"
    adapter = make()

    with pytest.raises(Misconfigured) as e:
        await aio(adapter.send([sms()]))

    assert e.value.http_status == 401
    for text in (str(e.value), e.value.detail, repr(e.value), repr(adapter), caplog.text):
        assert TOKEN not in text


@pytest_twisted.ensureDeferred
async def test_429_is_retryable_with_the_retry_after(fake, make):
    fake.fail_next(429, headers={"Retry-After": "7"})

    with pytest.raises(Retryable) as e:
        await aio(make().send([sms()]))

    assert (e.value.retry_after, e.value.command_status) == (7.0, ESME_RTHROTTLED)


@pytest.mark.parametrize("number, status", [("380990000004", 429), ("380990000005", 503)])
@pytest_twisted.ensureDeferred
async def test_throttling_and_server_errors_are_retryable(fake, make, number, status):
    with pytest.raises(Retryable) as e:
        await aio(make().send([sms(number)]))

    assert e.value.http_status == status


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_retryable(make):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving: nothing listens there

    with pytest.raises(Retryable):
        await aio(make(f"http://127.0.0.1:{port}").send([sms()]))


@pytest_twisted.ensureDeferred
async def test_a_failing_later_request_keeps_the_earlier_results(fake, make):
    first, second = await aio(make().send([sms(text="one"), sms("380990000005", "b", text="two")]))

    assert first.ok and first.provider_id in fake.messages
    assert isinstance(second.error, Retryable)


@pytest_twisted.ensureDeferred
async def test_phone_missing_from_the_answer_is_retryable(fake, make):
    fake.fail_next(200, body={"success_request": {"info": []}})

    [result] = await aio(make().send([sms()]))

    assert isinstance(result.error, Retryable)


# -- 453: duplicate within 2 minutes --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_453_for_a_message_the_esme_sent_twice_is_rsubmitfail(fake, make):
    adapter = make()
    await aio(adapter.send([sms(message_id="first")]))

    [again] = await aio(adapter.send([sms(message_id="second")]))

    error = again.error
    assert (error.command_status, error.err, error.http_status) == (ESME_RSUBMITFAIL, "453", 453)
    assert len(fake.messages) == 1


@pytest_twisted.ensureDeferred
async def test_453_on_our_retry_after_a_lost_answer_is_accepted_not_an_error(fake, make):
    adapter = make()
    fake.answer_after_accepting(504)  # SMS Club sent it; the answer was lost on the way
    with pytest.raises(Retryable):
        await aio(adapter.send([sms()]))

    [retried] = await aio(adapter.send([sms()]))

    assert retried.ok and retried.provider_id is None
    assert (retried.state, retried.provider_status) == (UNKNOWN, "453")
    assert len(fake.messages) == 1  # one SMS, not two


@pytest_twisted.ensureDeferred
async def test_453_on_our_retry_after_a_timeout_is_accepted(fake, make):
    adapter = make(timeout=0.3, duplicate_retry_state="ENROUTE")
    fake.stall_next_send()
    with pytest.raises(Retryable):
        await aio(adapter.send([sms()]))
    fake.release()

    [retried] = await aio(adapter.send([sms()]))

    assert retried.ok and (retried.provider_id, retried.state) == (None, ENROUTE)
    assert len(fake.messages) == 1


@pytest_twisted.ensureDeferred
async def test_453_for_a_mixed_request_resends_each_phone_alone(fake, make):
    adapter = make()
    await aio(adapter.send([sms(message_id="first")]))

    dup, fresh = await aio(adapter.send([sms(message_id="second"), sms("380990002222", "third")]))

    assert [r.json()["phone"] for r in sends(fake)] == [[OK], [OK, "380990002222"], [OK], ["380990002222"]]
    assert dup.error.err == "453"
    assert fresh.ok and fake.messages[fresh.provider_id].destination == "380990002222"


@pytest_twisted.ensureDeferred
async def test_the_same_phone_twice_in_a_batch_goes_in_separate_requests(fake, make):
    first, second = await aio(make().send([sms(message_id="a"), sms(message_id="b")]))

    assert [r.json()["phone"] for r in sends(fake)] == [[OK], [OK]]
    assert first.ok and second.error.err == "453"


@pytest_twisted.ensureDeferred
async def test_fake_duplicate_window_ends_after_120_seconds(fake, make):
    adapter = make()
    await aio(adapter.send([sms(message_id="a")]))
    fake.advance(121)

    [later] = await aio(adapter.send([sms(message_id="b")]))

    assert later.ok and len(fake.messages) == 2


# -- status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, unknown_state", [({}, ENROUTE), ({"unknown_status_final": True}, UNKNOWN)])
@pytest_twisted.ensureDeferred
async def test_every_status_word_maps_to_its_message_state(fake, make, options, unknown_state):
    words = {"1": "ENROUTE", "2": "DELIVRD", "3": "EXPIRED", "4": "UNDELIV", "5": "REJECTD", "6": "QUEUED"}
    fake.fail_next(200, body={"success_request": {"info": words}})

    reports = await aio(make(**options).poll(list(words)))

    assert {r.provider_id: (r.state, r.provider_status) for r in reports} == {
        "1": (ENROUTE, "ENROUTE"),
        "2": (DELIVERED, "DELIVRD"),
        "3": (EXPIRED, "EXPIRED"),
        "4": (UNDELIVERABLE, "UNDELIV"),
        "5": (REJECTED, "REJECTD"),
        "6": (unknown_state, "QUEUED"),
    }
    assert [r.final for r in reports] == [False, True, True, True, True, unknown_state == UNKNOWN]


@pytest_twisted.ensureDeferred
async def test_status_moves_from_enroute_to_final_on_the_fake_clock(fake, make):
    adapter = make()
    numbers = ["380990001111", "380990000002", "380990000003", "380990000006", "380990000007"]
    results = await aio(adapter.send([sms(n, f"gw-{n}") for n in numbers]))
    ids = [r.provider_id for r in results]

    before = await aio(adapter.poll(ids))
    fake.advance(DELAY)
    after = await aio(adapter.poll(ids))

    assert [r.state for r in before] == [ENROUTE] * 5
    assert {r.provider_id: r.state for r in after} == dict(
        zip(ids, [DELIVERED, UNDELIVERABLE, ENROUTE, EXPIRED, REJECTED], strict=True)
    )
    assert fake.requests_to("POST", "/sms/status")[0].json() == {"id_sms": ids}


@pytest_twisted.ensureDeferred
async def test_poll_asks_100_ids_a_request_and_leaves_out_unknown_ids(fake, make):
    adapter = make()
    [sent] = await aio(adapter.send([sms()]))
    ids = [sent.provider_id] + [str(n) for n in range(1, 150)]

    reports = await aio(adapter.poll(ids))

    assert [len(r.json()["id_sms"]) for r in fake.requests_to("POST", "/sms/status")] == [100, 50]
    assert [r.provider_id for r in reports] == [sent.provider_id]


# -- balance, senders, what SMS Club lacks --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_balance_and_the_no_balance_switch(fake, make):
    adapter = make()
    assert await aio(adapter.balance()) == [Balance(8111.17, "UAH")]
    req = fake.requests[-1]
    assert (req.path, req.body, req.headers["authorization"]) == ("/sms/balance", b"", f"Bearer {TOKEN}")

    fake.no_balance = True
    assert await aio(adapter.balance()) == [Balance(0.0, "UAH")]
    with pytest.raises(Permanent) as e:
        await aio(adapter.send([sms()]))
    assert e.value.command_status == ESME_RSUBMITFAIL


@pytest_twisted.ensureDeferred
async def test_senders_lists_the_originator_names(fake, make):
    assert await aio(make().senders()) == ["VashZakaz", "test1", "test2"]
    assert fake.requests[-1].path == "/sms/originator"


@pytest_twisted.ensureDeferred
async def test_webhooks_inbound_and_cancel_are_not_supported(make):
    adapter = make()
    caps = adapter.capabilities
    assert not (caps.webhooks or caps.inbound_poll or caps.inbound_webhook or caps.cancel)
    with pytest.raises(NotSupported):
        adapter.parse_webhook(WebhookRequest("POST", "/webhooks/club", {}, {}, b"{}"))
    with pytest.raises(NotSupported):
        await aio(adapter.inbound())
    with pytest.raises(NotSupported):
        await aio(adapter.cancel("106"))


def test_limits_follow_the_documented_api(fake):
    limits = SmsClub(settings(fake.url, requests_per_second=9)).limits
    assert (limits.batch_size, limits.poll_batch_size, limits.requests_per_second) == (100, 100, 9)


def test_a_missing_token_is_a_config_error():
    with pytest.raises(ConfigError, match="providers.club.token"):
        SmsClub(ProviderSettings(name="club", type="smsclub", url="", options={}))


# -- rate limits ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_local_pacing_waits_once_more_than_the_rate_went_out_in_a_second(fake):
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    adapter = SmsClub(settings(fake.url, requests_per_second=2), clock=lambda: now[0], sleep=sleep)
    try:
        await aio(adapter.send([sms(text=t, message_id=t) for t in ("one", "two", "three")]))
    finally:
        await aio(adapter.close())

    assert waits == [1.0] and len(sends(fake)) == 3


@pytest_twisted.ensureDeferred
async def test_fake_rate_limit_answers_429_beyond_its_rate(clock):
    with FakeSmsClub(token=TOKEN, clock=clock, rate_limit=2) as fake:
        adapter = SmsClub(settings(fake.url))
        try:
            await aio(adapter.balance())
            await aio(adapter.senders())
            with pytest.raises(Retryable) as e:
                await aio(adapter.balance())
        finally:
            await aio(adapter.close())

    assert e.value.http_status == 429


def test_fake_from_options_takes_the_token_and_switches():
    options = {"token": "t", "rate_limit": 0, "no_balance": True, "senders": ["X"]}
    with FakeSmsClub.from_options(0, options) as fake:
        assert (fake.token, fake.rate_limit, fake.no_balance, fake.senders) == ("t", None, True, ["X"])


@pytest_twisted.ensureDeferred
async def test_453_for_a_message_an_earlier_process_may_have_sent_is_accepted(fake, make):
    earlier = make()  # the process that sent it, then died before recording the answer
    await aio(earlier.send([sms()]))
    taken_over = make()  # the process that took the message over: it knows nothing of the send

    [again] = await aio(taken_over.send([sms(maybe_sent=True)]))

    assert again.ok and again.provider_id is None
    assert (again.state, again.provider_status) == (UNKNOWN, "453")
    assert len(fake.messages) == 1  # one SMS, not two


@pytest_twisted.ensureDeferred
async def test_a_message_that_may_have_been_sent_but_was_not_goes_out_normally(fake, make):
    [res] = await aio(make().send([sms(maybe_sent=True)]))
    assert res.ok and res.provider_id and len(fake.messages) == 1
