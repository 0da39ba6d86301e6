"""SMS-fly adapter against the SMS-fly fake, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_twisted

from smppgw.config import ConfigError, ProviderSettings
from smppgw.fakes.base import FakeClock
from smppgw.fakes.smsfly import PATH, FakeSmsFly
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    EXPIRED,
    REJECTED,
    UNDELIVERABLE,
    Balance,
    Misconfigured,
    NotSupported,
    OutboundSms,
    Permanent,
    Retryable,
    WebhookRequest,
)
from smppgw.providers.smsfly import STATUS_TABLE, SmsFly
from tests.aio import aio

KEY = "3f2c9a1e-7b4d-4e8f-9a6b-1c2d3e4f5a6b"  # 36 characters, like a real SMS-fly key
DELAY = 60.0
OK_NUMBER = "380501234567"


def settings(url: str, **options: object) -> ProviderSettings:
    return ProviderSettings(
        name="fly", type="smsfly", url=url, options={"api_key": KEY, **options}, timeout=2.0
    )


def sms(destination: str = OK_NUMBER, **fields: object) -> OutboundSms:
    values: dict = {
        "message_id": "gw-1",
        "source": "InfoCenter",
        "destination": destination,
        "text": "Привіт",
    }
    values.update(fields)
    return OutboundSms(**values)


def error_body(code: str, description: str = "") -> dict:
    return {
        "success": 0,
        "error": {"code": code, "date": "2021-02-03 04:05:06 +0200", "description": description},
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(manual=True)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeSmsFly]:
    with FakeSmsFly(api_key=KEY, clock=clock, delay=DELAY) as f:
        yield f  # type: ignore[misc]


@pytest_twisted.async_yield_fixture
async def make(fake: FakeSmsFly):
    """Build adapters pointed at the fake (or at `url`); all are closed after the test."""
    made: list[SmsFly] = []

    def build(url: str | None = None, **options: object) -> SmsFly:
        made.append(SmsFly(settings(url or fake.url + PATH, **options)))
        return made[-1]

    yield build
    for adapter in made:
        await aio(adapter.close())


async def send_one(adapter: SmsFly, message: OutboundSms | None = None):
    [result] = await aio(adapter.send([message or sms()]))
    return result


async def poll_one(adapter: SmsFly, provider_id: str):
    [report] = await aio(adapter.poll([provider_id]))
    return report


def last_json(fake: FakeSmsFly) -> dict:
    return fake.requests[-1].json()


# -- send ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_posts_the_documented_sendmessage_request(fake, make):
    result = await send_one(make(), sms(valid_until=datetime.now(UTC) + timedelta(minutes=300)))

    [req] = fake.requests
    assert (req.method, req.path) == ("POST", "/api/v2/api.php")
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "auth": {"key": KEY},
        "action": "SENDMESSAGE",
        "data": {
            "recipient": OK_NUMBER,
            "channels": ["sms"],
            "sms": {"source": "InfoCenter", "ttl": 300, "text": "Привіт"},
        },
    }
    assert result.ok and result.provider_id in fake.messages
    assert result.state == ENROUTE  # "accepted" means queued, never SMPP ACCEPTED (6)


@pytest.mark.parametrize(
    ("word", "cost_as"),
    [("ACCEPTED", "number"), ("ACCEPTD", "string"), ("ACCEPTED", "string"), ("ACCEPTD", "number")],
)
@pytest_twisted.ensureDeferred
async def test_send_accepts_both_accepted_spellings_and_both_cost_types(fake, make, word, cost_as):
    fake.accepted_word, fake.cost_as = word, cost_as

    result = await send_one(make())

    assert result.ok and result.provider_status == word and result.state == ENROUTE


@pytest.mark.parametrize(("flash", "expected"), [(True, 1), (False, None)])
@pytest_twisted.ensureDeferred
async def test_flash_message_sends_flash_1_and_normal_sends_none(fake, make, flash, expected):
    await send_one(make(), sms(flash=flash))

    assert last_json(fake)["data"]["sms"].get("flash") == expected


@pytest.mark.parametrize(
    ("validity", "ttl"),
    [
        (timedelta(minutes=90, seconds=30), 91),
        (timedelta(days=3), 1440),
        (timedelta(minutes=-5), 1),
        (None, 1440),
    ],
)
@pytest_twisted.ensureDeferred
async def test_ttl_is_validity_in_minutes_rounded_up_and_clamped(fake, make, validity, ttl):
    valid_until = None if validity is None else datetime.now(UTC) + validity

    result = await send_one(make(), sms(valid_until=valid_until))

    assert result.ok and last_json(fake)["data"]["sms"]["ttl"] == ttl


@pytest_twisted.ensureDeferred
async def test_ttl_out_of_range_is_rinvexpiry_when_clamping_is_off(fake, make):
    result = await send_one(make(clamp_ttl=False), sms(valid_until=datetime.now(UTC) + timedelta(days=2)))

    assert result.error.command_status == 0x62 and not fake.requests


@pytest_twisted.ensureDeferred
async def test_future_schedule_is_rinvsched_without_a_request(fake, make):
    result = await send_one(make(), sms(schedule_at=datetime.now(UTC) + timedelta(hours=1)))

    assert result.error.command_status == 0x61 and not fake.requests


@pytest_twisted.ensureDeferred
async def test_missing_sender_uses_default_source_or_is_rinvsrcadr_without_a_request(fake, make):
    refused = await send_one(make(), sms(source=""))
    assert refused.error.command_status == 0x0A and not fake.requests

    result = await send_one(make(default_source="myAlphaName"), sms(source=""))
    assert result.ok and last_json(fake)["data"]["sms"]["source"] == "myAlphaName"


@pytest_twisted.ensureDeferred
async def test_viber_with_sms_fallback_sends_both_parts_in_priority_order(fake, make):
    result = await send_one(make(channels="viber,sms", viber_source="Promo"))

    data = last_json(fake)["data"]
    assert data["channels"] == ["viber", "sms"]
    assert data["viber"] == {"source": "Promo", "ttl": 1440, "text": "Привіт"}
    assert data["sms"] == {"source": "InfoCenter", "ttl": 1440, "text": "Привіт"}
    assert result.ok


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "status"),
    [
        (sms(destination="380500000001"), 0x0B),  # the fake's INVRECIPIENT number
        (sms(source="NotApproved"), 0x0A),
        (sms(text=""), 0x01),
    ],
)
@pytest_twisted.ensureDeferred
async def test_fake_refusals_come_back_classified_in_the_result(fake, make, message, status):
    result = await send_one(make(), message)

    assert type(result.error) is Permanent
    assert (result.error.command_status, result.error.http_status) == (status, 400)


@pytest.mark.parametrize(
    ("http", "body", "status"),
    [
        (400, error_body("INVRECIPIENT"), 0x0B),
        (400, error_body("INVSOURCE"), 0x0A),
        (400, error_body("INVTEXT"), 0x01),
        (400, error_body("INVSMSMESSAGE"), 0x01),
        (400, error_body("INSUFFICIENTFUNDS"), 0x45),
        (400, error_body("INVROUTE"), 0x45),
        (400, error_body("INVREQUEST"), 0x08),
        (400, error_body("INVCHANNELS"), 0x08),
        (422, error_body("INVREQUEST"), 0x08),
        (422, b"", 0x08),
        (200, error_body("INVRECIPIENT"), 0x0B),  # success:0 counts whatever the HTTP code
    ],
)
@pytest_twisted.ensureDeferred
async def test_error_bodies_are_classified_by_code(fake, make, http, body, status):
    fake.fail_next(http, body=body)

    result = await send_one(make())

    assert type(result.error) is Permanent and result.error.command_status == status


@pytest.mark.parametrize(("options", "status"), [({}, 0x45), ({"no_credit_status": 0x401}, 0x401)])
@pytest_twisted.ensureDeferred
async def test_no_balance_refuses_with_the_configured_status(fake, make, options, status):
    fake.no_balance = True

    result = await send_one(make(**options))

    assert result.error.command_status == status


@pytest_twisted.ensureDeferred
async def test_send_answer_with_insufficientfund_status_is_a_refusal(fake, make):
    fake.no_balance, fake.no_balance_mode = True, "status"

    result = await send_one(make())

    assert result.provider_id and result.state == REJECTED and result.error.command_status == 0x45


@pytest.mark.parametrize(
    ("http", "body"),
    [(403, error_body("FORBIDDEN", f"bad key {KEY}")), (401, b""), (403, b"<html>Forbidden</html>")],
)
@pytest_twisted.ensureDeferred
async def test_refused_key_is_misconfigured_and_never_shown(fake, make, caplog, http, body):
    caplog.set_level(logging.DEBUG)
    adapter = make()
    fake.fail_next(http, body=body)

    with pytest.raises(Misconfigured) as info:
        await send_one(adapter)

    for text in (str(info.value), repr(info.value), info.value.detail, repr(adapter), caplog.text):
        assert KEY not in text
    assert info.value.http_status == http


@pytest_twisted.ensureDeferred
async def test_wrong_key_at_the_fake_is_misconfigured_for_every_call(fake, make):
    fake.api_key = "another-key"
    adapter = make()

    for call in (adapter.send([sms()]), adapter.poll(["FAPI1"]), adapter.balance(), adapter.senders()):
        with pytest.raises(Misconfigured) as info:
            await aio(call)
        assert KEY not in str(info.value)


@pytest_twisted.ensureDeferred
async def test_throttled_send_is_retryable_with_retry_after(fake, make):
    adapter = make()
    with pytest.raises(Retryable) as info:
        await send_one(adapter, sms(destination="380500000004"))
    assert (info.value.command_status, info.value.retry_after) == (0x58, 2.0)

    fake.fail_next(429, body=b"", headers={"Retry-After": "7"})
    with pytest.raises(Retryable) as info:
        await send_one(adapter)
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("http", [500, 502, 503])
@pytest_twisted.ensureDeferred
async def test_server_errors_are_retryable_even_with_an_error_body(fake, make, http):
    fake.fail_next(http, body=error_body("INVRECIPIENT"))

    with pytest.raises(Retryable) as info:
        await send_one(make())

    assert info.value.http_status == http


@pytest_twisted.ensureDeferred
async def test_server_error_number_is_retryable(fake, make):
    with pytest.raises(Retryable) as info:
        await send_one(make(), sms(destination="380500000005"))

    assert info.value.http_status == 502


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_retryable(make):
    with socket.socket() as s:  # a port that was free a moment ago and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = make(f"http://127.0.0.1:{port}{PATH}")

    for call in (adapter.send([sms()]), adapter.poll(["FAPI1"]), adapter.balance()):
        with pytest.raises(Retryable) as info:
            await aio(call)
        assert not info.value.maybe_sent  # never reached SMS-fly: safe to send again


@pytest_twisted.ensureDeferred
async def test_read_timeout_on_send_is_not_resent_unless_configured():
    # A listener that never accepts: the request goes out, no answer ever comes back.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}{PATH}"
        careful = SmsFly(ProviderSettings("fly", "smsfly", url, {"api_key": KEY}, timeout=0.2))
        resending = SmsFly(
            ProviderSettings(
                "fly", "smsfly", url, {"api_key": KEY, "resend_on_unknown_outcome": True}, timeout=0.2
            )
        )
        try:
            result = await send_one(careful)  # SMS-fly may have taken it: report, do not retry
            assert type(result.error) is Permanent and result.error.command_status == 0x08
            with pytest.raises(Retryable) as info:
                await send_one(resending)
            assert info.value.maybe_sent
            with pytest.raises(Retryable):  # a status query is safe to repeat
                await aio(careful.poll(["FAPI1"]))
        finally:
            await aio(careful.close())
            await aio(resending.close())


# -- status ----------------------------------------------------------------------------------

# The spec's status table (smsfly.md): word → (message_state, final).
SPEC_STATUSES = {
    "ACCEPTD": (ENROUTE, False),
    "ACCEPTED": (ENROUTE, False),
    "PENDING": (ENROUTE, False),
    "INPROGRESS": (ENROUTE, False),
    "MODERATION": (ENROUTE, False),
    "RESERVED": (ENROUTE, False),
    "SENT": (ENROUTE, False),
    "DELIVRD": (DELIVERED, True),
    "VIEWED": (DELIVERED, True),
    "EXPIRED": (EXPIRED, True),
    "UNDELIV": (UNDELIVERABLE, True),
    "ERROR": (UNDELIVERABLE, True),
    "STOPED": (REJECTED, True),
    "INSUFFICIENTFUND": (REJECTED, True),
    "REFUND": (UNDELIVERABLE, True),
}


def test_status_table_covers_exactly_the_spec_words():
    assert {word: state for word, (state, _) in STATUS_TABLE.items()} == {
        word: state for word, (state, _) in SPEC_STATUSES.items()
    }
    assert all(len(err) == 3 and err.isdigit() for _, err in STATUS_TABLE.values())


@pytest.mark.parametrize(("word", "expected"), sorted(SPEC_STATUSES.items()))
@pytest_twisted.ensureDeferred
async def test_polled_status_word_maps_to_its_smpp_state(fake, make, word, expected):
    adapter = make()
    result = await send_one(adapter)
    fake.force_status(result.provider_id, sms=word)

    report = await poll_one(adapter, result.provider_id)

    assert (report.state, report.final, report.provider_status) == (*expected, word)
    assert fake.requests[-1].json()["action"] == "GETMESSAGESTATUS"
    assert fake.requests[-1].json()["data"] == {"messageID": result.provider_id}


@pytest_twisted.ensureDeferred
async def test_status_progresses_on_the_fake_clock(fake, make, clock):
    adapter = make()
    sent_at = clock.now()
    pid = (await send_one(adapter)).provider_id

    first = await poll_one(adapter, pid)
    fake.advance(DELAY / 2)
    second = await poll_one(adapter, pid)
    fake.advance(DELAY / 2)
    last = await poll_one(adapter, pid)

    assert [(r.provider_status, r.final) for r in (first, second, last)] == [
        ("ACCEPTD", False),
        ("SENT", False),
        ("DELIVRD", True),
    ]
    assert last.state == DELIVERED and last.err == "000"
    # The status date has no offset; it is read in the envelope's +0200 and given in UTC.
    assert last.done_at == datetime.fromtimestamp(sent_at + DELAY, UTC)


@pytest.mark.parametrize(
    ("suffix", "word", "state", "final"),
    [
        ("0002", "UNDELIV", UNDELIVERABLE, True),
        ("0006", "EXPIRED", EXPIRED, True),
        ("0007", "STOPED", REJECTED, True),
        ("0003", "SENT", ENROUTE, False),
    ],
)
@pytest_twisted.ensureDeferred
async def test_number_suffix_decides_the_final_status(fake, make, suffix, word, state, final):
    adapter = make()
    pid = (await send_one(adapter, sms(destination="38050000" + suffix))).provider_id
    fake.advance(DELAY * 10)

    report = await poll_one(adapter, pid)

    assert (report.provider_status, report.state, report.final) == (word, state, final)


@pytest_twisted.ensureDeferred
async def test_poll_leaves_out_unknown_ids(fake, make):
    adapter = make()
    pid = (await send_one(adapter)).provider_id

    reports = await aio(adapter.poll(["FAPI0000UNKNOWN", pid]))

    assert [r.provider_id for r in reports] == [pid]


@pytest.mark.parametrize(
    ("viber", "sms_word", "state", "shown"),
    [
        ("DELIVRD", "REFUND", DELIVERED, "DELIVRD"),  # the seed's own example
        ("VIEWED", "REFUND", DELIVERED, "VIEWED"),
        ("UNDELIV", "DELIVRD", DELIVERED, "DELIVRD"),
        ("UNDELIV", "PENDING", ENROUTE, "PENDING"),
        ("UNDELIV", "UNDELIV", UNDELIVERABLE, "UNDELIV"),
        ("EXPIRED", "REFUND", EXPIRED, "EXPIRED"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_viber_with_fallback_is_delivered_if_any_channel_is(fake, make, viber, sms_word, state, shown):
    adapter = make(channels="viber,sms", viber_source="Promo")
    pid = (await send_one(adapter)).provider_id
    fake.force_status(pid, viber=viber, sms=sms_word)

    report = await poll_one(adapter, pid)

    assert (report.state, report.provider_status) == (state, shown)


@pytest_twisted.ensureDeferred
async def test_viber_fallback_without_forcing_follows_the_fake(fake, make):
    adapter = make(channels="viber,sms", viber_source="Promo")
    pid = (await send_one(adapter)).provider_id
    fake.advance(DELAY)

    report = await poll_one(adapter, pid)

    assert (report.state, report.provider_status) == (DELIVERED, "DELIVRD")


# -- balance, senders, prices ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_balance_is_getbalance_in_uah(fake, make):
    adapter = make()

    assert await aio(adapter.balance()) == [Balance(91.477, "UAH")]
    assert last_json(fake) == {"auth": {"key": KEY}, "action": "GETBALANCE", "data": {}}

    fake.no_balance = True
    assert await aio(adapter.balance()) == [Balance(0.0, "UAH")]


@pytest_twisted.ensureDeferred
async def test_extended_balance_gives_one_entry_per_channel(fake, make):
    adapter = make(balance_action="GETBALANCEEXT", channels="viber,sms", currency="EUR")

    assert await aio(adapter.balance()) == [Balance(191.477, "EUR"), Balance(91.477, "EUR")]
    assert last_json(fake)["action"] == "GETBALANCEEXT"


@pytest.mark.parametrize("action", ["GETSOURCES", "GETSOURCE"])
@pytest_twisted.ensureDeferred
async def test_senders_lists_the_sms_sender_names(fake, make, action):
    names = await aio(make(sources_action=action).senders())

    assert names == ["InfoCenter", "myAlphaName"]
    assert last_json(fake) == {"auth": {"key": KEY}, "action": action, "data": {"channels": ["sms"]}}


@pytest_twisted.ensureDeferred
async def test_prices_come_from_the_pricelist_per_network(fake, make):
    adapter = make(price_mccs=["255", "260"])

    prices = await aio(adapter.prices())

    assert prices == {"255-00": 0.479, "255-01": 0.478, "255-03": 0.477, "255-06": 0.476, "260-01": 1.9}
    assert [r.json()["action"] for r in fake.requests] == ["GETPRICELIST", "GETPRICELIST"]
    assert fake.requests[0].json()["data"] == {"channels": ["sms"], "mcc": "255"}


@pytest_twisted.ensureDeferred
async def test_price_for_one_network_uses_getprice(fake, make):
    prices = await aio(make().prices(["255"], mnc="01"))

    assert prices == {"255-01": 0.478}
    assert last_json(fake)["action"] == "GETPRICE"
    assert last_json(fake)["data"] == {"channels": ["sms"], "mcc": "255", "mnc": "01"}


# -- the rest of the interface ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_webhooks_inbound_and_cancel_are_not_supported(make):
    adapter = make()

    with pytest.raises(NotSupported):
        adapter.parse_webhook(WebhookRequest("POST", "/webhooks/fly", {}, {}, b"{}"))
    for call in (adapter.inbound(), adapter.cancel("FAPI1")):
        with pytest.raises(NotSupported):
            await aio(call)
    assert not adapter.capabilities.webhooks and adapter.capabilities.poll and adapter.capabilities.flash
    assert adapter.limits.batch_size == 1 and adapter.limits.poll_batch_size == 1


@pytest_twisted.ensureDeferred
async def test_close_closes_the_one_client(make):
    adapter = make()
    client = adapter._client

    await aio(adapter.close())

    assert client.is_closed


@pytest.mark.parametrize(
    ("options", "hidden"),
    [({}, False), ({"api_key": 123456}, True), ({"api_key": KEY, "channels": "fax"}, False)],
)
def test_bad_options_are_config_errors_that_hide_the_key(options, hidden):
    with pytest.raises(ConfigError) as info:
        SmsFly(ProviderSettings("fly", "smsfly", "http://127.0.0.1:9", options))

    assert ("<hidden>" in str(info.value)) == hidden and "123456" not in str(info.value)


@pytest_twisted.ensureDeferred
async def test_fake_from_options_serves_with_the_given_key_and_switches():
    with pytest.raises(ValueError):
        FakeSmsFly.from_options(0, {"colour": "blue"})
    with FakeSmsFly.from_options(0, {"api_key": KEY, "no_balance": True, "balance": "5.000"}) as fake:
        adapter = SmsFly(settings(fake.url + PATH))
        try:
            assert await aio(adapter.balance()) == [Balance(0.0, "UAH")]
        finally:
            await aio(adapter.close())
