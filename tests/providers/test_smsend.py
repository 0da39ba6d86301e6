"""smSend adapter against the smSend fake over real HTTP on 127.0.0.1.

The fake's clock is manual, so status progression and the 5-minute session expiry are moved
by `fake.advance`, never by sleeping. The only real waits are the two client timeouts (0.3 s)
of the reconcile tests.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import pytest_twisted

from smppgw.config import ConfigError, ProviderSettings
from smppgw.fakes.base import FakeClock
from smppgw.fakes.smsend import FakeSmSend
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    EXPIRED,
    REJECTED,
    UNDELIVERABLE,
    UNKNOWN,
    Balance,
    Misconfigured,
    NotSupported,
    OutboundSms,
    Retryable,
    WebhookRequest,
)
from smppgw.providers.smsend import STATUS_TABLE, SmSend
from tests.aio import aio

PASSWORD = "pw-7f3a9-secret"
START = 1_800_000_000.0  # FakeClock's default start, 2027-01-15 08:00:00 UTC

# The spec's full status list (smsend.md "Full status list") and the state each must map to.
SPEC_STATES = {
    "WAITING": ENROUTE,
    "SCHEDULED": ENROUTE,
    "SENT": ENROUTE,
    "WAIT4DLVR": ENROUTE,
    "DLVRD": DELIVERED,
    "TIMEOUT": EXPIRED,
    "ERROR": UNDELIVERABLE,
    "KO": REJECTED,
    "UNKNRCPT": REJECTED,
    "UNKNPFX": REJECTED,
    "INVALIDDST": REJECTED,
    "BLACKLISTED": REJECTED,
    "INVALIDCONTENTS": REJECTED,
    "TOOM4USER": REJECTED,
    "TOOM4NUM": REJECTED,
    "DEMO": UNKNOWN,
}


@pytest.fixture
def fake():
    f = FakeSmSend(clock=FakeClock(manual=True), delay=60.0, password=PASSWORD).start()
    yield f
    f.stop()


@pytest_twisted.async_yield_fixture
async def adapters():
    made: list[SmSend] = []

    def make(fake: FakeSmSend, timeout: float = 5.0, url: str | None = None, **options) -> SmSend:
        opts = {"username": "user", "password": PASSWORD, **options}
        made.append(SmSend(ProviderSettings("it", "smsend", url or fake.url, opts, timeout=timeout)))
        return made[-1]

    yield make
    for a in made:
        await aio(a.close())


def sms(message_id: str = "m1", destination: str = "393471231000", **kw) -> OutboundSms:
    return OutboundSms(message_id, kw.pop("source", "MySender"), destination, kw.pop("text", "Hello"), **kw)


async def gather(*coros):
    return await asyncio.gather(*coros)


def logins(fake: FakeSmSend) -> int:
    return len(fake.requests_to("GET", "/login"))


# -- requests on the wire --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_logs_in_and_posts_the_documented_order(fake, adapters):
    [res] = await aio(adapters(fake).send([sms("4711")]))
    assert res.ok and res.provider_id == "4711"
    [login] = fake.requests_to("GET", "/login")
    assert login.query == {"username": ["user"], "password": [PASSWORD]}
    [post] = fake.requests_to("POST", "/sms")
    assert post.headers["user_key"] == fake.user_key
    assert post.headers["session_key"] in fake.sessions
    assert not {"user-key", "session-key"} & set(post.headers)
    assert post.json() == {
        "message_type": "N",
        "message": "Hello",
        "recipient": ["+393471231000"],
        "sender": "MySender",
        "order_id": "4711",
    }
    assert list(fake.orders) == ["4711"]


@pytest_twisted.ensureDeferred
async def test_unicode_and_schedule_use_ucs2_and_yyyymmddhhmmss_in_rome_time(fake, adapters):
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    await aio(adapters(fake).send([sms("u1", text="Ciao ☺", unicode=True, schedule_at=when)]))
    body = fake.requests_to("POST", "/sms")[0].json()
    assert body["encoding"] == "ucs2"
    assert body["scheduled_delivery_time"] == "20300102040405"  # CET is UTC+1; never "2030-01-02T…"
    assert "scheduled_delivery_timezone" not in body


@pytest_twisted.ensureDeferred
async def test_token_auth_sends_access_token_header(fake, adapters):
    await aio(adapters(fake, auth="token").send([sms()]))
    assert fake.requests_to("GET", "/login") == [] and len(fake.requests_to("GET", "/token")) == 1
    post = fake.requests_to("POST", "/sms")[0]
    assert post.headers["access_token"] == fake.token and "session_key" not in post.headers


def test_fake_refuses_hyphenated_auth_headers(fake):
    # The quirk the adapter must respect: User-Key is "not supported" [S003].
    headers = {"User-Key": fake.user_key, "Session-Key": "x"}
    req = urllib.request.Request(f"{fake.url}/status", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 401


# -- login sharing, expiry, secrets ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_twenty_concurrent_sends_share_one_login(fake, adapters):
    adapter = adapters(fake)
    results = await aio(gather(*(adapter.send([sms(f"c{i}")]) for i in range(20))))
    assert all(r.ok for [r] in results)
    assert logins(fake) == 1 and len(fake.orders) == 20


@pytest_twisted.ensureDeferred
async def test_expired_session_relogs_in_and_the_send_in_flight_succeeds_once(fake, adapters):
    adapter = adapters(fake)
    await aio(adapter.send([sms("a")]))
    fake.advance(301)  # 5 minutes idle: the fake answers 401 to the old session key
    [res] = await aio(adapter.send([sms("b")]))
    assert res.ok and res.provider_id == "b"
    assert logins(fake) == 2
    assert [p.json()["order_id"] for p in fake.requests_to("POST", "/sms")] == ["a", "b", "b"]
    assert sorted(fake.orders) == ["a", "b"]


@pytest_twisted.ensureDeferred
async def test_concurrent_requests_with_an_expired_session_share_one_relogin(fake, adapters):
    adapter = adapters(fake)
    await aio(adapter.send([sms("first")]))
    fake.expire_sessions()
    results = await aio(gather(*(adapter.send([sms(f"r{i}")]) for i in range(8))))
    assert all(r.ok for [r] in results)
    assert logins(fake) == 2 and len(fake.orders) == 9


@pytest_twisted.ensureDeferred
async def test_401_after_a_fresh_login_is_misconfigured(fake, adapters):
    adapter = adapters(fake)
    fake.refuse_keys = True
    with pytest.raises(Misconfigured) as e:
        await aio(adapter.send([sms()]))
    assert e.value.http_status == 401 and logins(fake) == 2 and fake.orders == {}


@pytest_twisted.ensureDeferred
async def test_login_404_is_misconfigured_and_hides_the_password(fake, adapters):
    adapter = adapters(fake, password="wrong-" + PASSWORD)
    with pytest.raises(Misconfigured) as e:
        await aio(adapter.send([sms()]))
    assert e.value.http_status == 404 and logins(fake) == 1
    assert PASSWORD not in str(e.value) and PASSWORD not in repr(adapter)


@pytest_twisted.ensureDeferred
async def test_unknown_user_key_on_send_is_misconfigured(fake, adapters):
    adapter = adapters(fake)
    await aio(adapter.balance())
    fake.user_key = "UKsomeoneelse"  # our key no longer exists: 404 "User_key was not found"
    with pytest.raises(Misconfigured):
        await aio(adapter.send([sms()]))


@pytest_twisted.ensureDeferred
async def test_password_and_keys_never_reach_the_logs(fake, adapters, caplog):
    caplog.set_level(logging.DEBUG)
    adapter = adapters(fake)
    await aio(adapter.send([sms("a")]))
    fake.advance(301)
    await aio(adapter.poll(["a"]))
    assert "password=REDACTED" in caplog.text  # httpx logged the login URL, redacted
    for secret in (PASSWORD, fake.user_key, *fake.sessions):
        assert secret not in caplog.text
    assert PASSWORD not in repr(adapter) and fake.user_key not in repr(adapter._login)


# -- timeouts, 5xx and reconciliation --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_timeout_with_the_order_created_reconciles_without_a_second_order(fake, adapters):
    fake.stall_after_create()
    [res] = await aio(adapters(fake, timeout=0.3).send([sms("t1")]))
    assert res.ok and res.provider_id == "t1"
    assert list(fake.orders) == ["t1"] and len(fake.requests_to("POST", "/sms")) == 1
    assert len(fake.requests_to("GET", "/sms/t1")) == 1


@pytest_twisted.ensureDeferred
async def test_send_5xx_with_the_order_created_reconciles_without_a_second_order(fake, adapters):
    fake.fail_after_create(502)
    [res] = await aio(adapters(fake).send([sms("x1")]))
    assert res.ok and res.provider_id == "x1" and res.state == ENROUTE
    assert list(fake.orders) == ["x1"] and len(fake.requests_to("POST", "/sms")) == 1


@pytest_twisted.ensureDeferred
async def test_send_5xx_without_an_order_is_retryable(fake, adapters):
    with pytest.raises(Retryable) as e:
        await aio(adapters(fake).send([sms("x5", "393471230005")]))
    assert e.value.http_status == 500 and not e.value.maybe_sent and "not created" in e.value.detail
    assert fake.orders == {} and len(fake.requests_to("GET", "/sms/x5")) == 1


@pytest_twisted.ensureDeferred
async def test_send_in_doubt_is_checked_before_it_is_resent(fake, adapters):
    adapter = adapters(fake, timeout=0.3)
    fake.stall_after_create()
    fake.fail_next_on("GET", "/sms/d1", 503)  # the reconcile fails too: the order's fate is unknown
    with pytest.raises(Retryable) as e:
        await aio(adapter.send([sms("d1")]))
    assert e.value.maybe_sent
    fake.release()
    [res] = await aio(adapter.send([sms("d1")]))  # the gateway's retry
    assert res.ok and list(fake.orders) == ["d1"]
    assert len(fake.requests_to("POST", "/sms")) == 1 and len(fake.requests_to("GET", "/sms/d1")) == 2


@pytest_twisted.ensureDeferred
async def test_send_that_cannot_connect_is_retryable_without_a_reconcile(fake, adapters):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    adapter = adapters(fake, url=closed)
    with pytest.raises(Retryable) as e:
        await aio(adapter.send([sms("c1")]))
    assert not e.value.maybe_sent  # a reconcile attempt would have failed too and said "unknown"


@pytest_twisted.ensureDeferred
async def test_429_is_retryable_throttled_and_not_reconciled(fake, adapters):
    with pytest.raises(Retryable) as e:
        await aio(adapters(fake).send([sms("th", "393471230004")]))
    assert e.value.command_status == 0x58 and e.value.retry_after == 1.0
    assert fake.requests_to("GET", "/sms/th") == []


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("Invalid input: recipient +3900 is not valid", 0x0B),
        ("Invalid input: sender alias 'X' is not approved", 0x0A),
        ("Invalid input: message too long", 0x01),
        ("Invalid input: scheduled_delivery_time format", 0x61),
        ("Not enough credit to send the message", 0x45),
        ("Something else went wrong", 0x45),
    ],
)
@pytest_twisted.ensureDeferred
async def test_400_body_hints_map_to_smpp_status(fake, adapters, body, status):
    fake.fail_next_on("POST", "/sms", 400, body)
    [res] = await aio(adapters(fake).send([sms()]))
    assert not res.ok and res.error.command_status == status and res.error.http_status == 400


@pytest_twisted.ensureDeferred
async def test_fake_refusals_reach_the_esme_as_smpp_statuses(fake, adapters):
    fake.strict_sender = True
    adapter = adapters(fake)
    [bad_number] = await aio(adapter.send([sms("n1", "393471230001")]))
    [bad_sender] = await aio(adapter.send([sms("n2", source="Unknown")]))
    [too_long] = await aio(adapter.send([sms("n3", text="x" * 1001)]))
    fake.no_balance = True
    [no_credit] = await aio(adapters(fake, no_credit_status=0x401).send([sms("n4")]))
    assert [r.error.command_status for r in (bad_number, bad_sender, too_long, no_credit)] == [
        0x0B,
        0x0A,
        0x01,
        0x401,
    ]
    assert fake.orders == {}


# -- status ----------------------------------------------------------------------------------


def test_status_table_maps_every_documented_word():
    assert {word: state for word, (state, _) in STATUS_TABLE.items()} == SPEC_STATES
    failures = [err for word, (state, err) in STATUS_TABLE.items() if state not in (ENROUTE, DELIVERED)]
    assert len(set(failures)) == len(failures) and "000" not in failures


@pytest_twisted.ensureDeferred
async def test_poll_maps_every_status_word_the_api_returns(fake, adapters):
    adapter = adapters(fake)
    words = [*SPEC_STATES, "OK", "SOMETHINGNEW"]
    await aio(adapter.send([sms(w) for w in words]))
    for w in words:
        fake.force_status(w, w)
    reports = {r.provider_id: r for r in await aio(adapter.poll(words))}
    assert {w: reports[w].state for w in SPEC_STATES} == SPEC_STATES
    assert {w: reports[w].provider_status for w in words} == {w: w for w in words}
    # Unlisted words keep the message open: UNKNOWN (7) would be final.
    assert reports["OK"].state == ENROUTE and not reports["SOMETHINGNEW"].final
    assert reports["DLVRD"].done_at == datetime.fromtimestamp(START, UTC)


@pytest_twisted.ensureDeferred
async def test_status_overrides_option_remaps_a_word(fake, adapters):
    adapter = adapters(fake, status_overrides={"DEMO": "DELIVRD"})
    await aio(adapter.send([sms("d")]))
    fake.force_status("d", "DEMO")
    [r] = await aio(adapter.poll(["d"]))
    assert r.state == DELIVERED and r.err == STATUS_TABLE["DEMO"][1]
    with pytest.raises(ConfigError):
        adapters(fake, status_overrides={"DEMO": "GONE"})


@pytest_twisted.ensureDeferred
async def test_status_progresses_over_the_fake_clock(fake, adapters):
    adapter = adapters(fake)
    ids = {
        "p1": "393471231000",
        "p2": "393471230002",
        "p3": "393471230003",
        "p6": "393471230006",
        "p7": "393471230007",
    }
    await aio(adapter.send([sms(i, d) for i, d in ids.items()]))

    async def states() -> dict[str, tuple[str, int]]:
        return {r.provider_id: (r.provider_status, r.state) for r in await adapter.poll(list(ids))}

    assert (await aio(states()))["p1"] == ("WAITING", ENROUTE)
    fake.advance(15)
    assert (await aio(states()))["p1"] == ("SENT", ENROUTE)
    fake.advance(15)
    assert (await aio(states()))["p1"] == ("WAIT4DLVR", ENROUTE)
    fake.advance(30)
    assert await aio(states()) == {
        "p1": ("DLVRD", DELIVERED),
        "p2": ("ERROR", UNDELIVERABLE),
        "p3": ("SENT", ENROUTE),
        "p6": ("TIMEOUT", EXPIRED),
        "p7": ("KO", REJECTED),
    }
    [p1] = await aio(adapter.poll(["p1"]))
    assert p1.final and p1.done_at == datetime.fromtimestamp(START + 60, UTC)
    assert p1.destination == "393471231000" and p1.message_id == "p1"


@pytest_twisted.ensureDeferred
async def test_low_cost_type_sends_no_sender_and_stays_sent(fake, adapters):
    adapter = adapters(fake, message_type="L")
    [res] = await aio(adapter.send([sms("l1")]))
    assert res.ok and "sender" not in fake.requests_to("POST", "/sms")[0].json()
    assert adapter.limits.max_text_length == 160
    fake.advance(600)
    [r] = await aio(adapter.poll(["l1"]))
    assert (r.provider_status, r.final) == ("SENT", False)


@pytest_twisted.ensureDeferred
async def test_poll_leaves_out_unknown_orders(fake, adapters):
    assert await aio(adapters(fake).poll(["nope"])) == []


# -- cancel, balance, senders, inbound, webhook ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_cancel_deletes_only_a_scheduled_order(fake, adapters):
    adapter = adapters(fake)
    later = datetime.fromtimestamp(START + 3600, UTC)
    await aio(adapter.send([sms("s1", schedule_at=later), sms("now")]))
    assert await aio(adapter.cancel("s1")) is True
    assert len(fake.requests_to("DELETE", "/sms/s1")) == 1 and "s1" not in fake.orders
    assert await aio(adapter.cancel("now")) is False  # WAITING, not SCHEDULED
    assert await aio(adapter.cancel("unknown")) is False
    assert "now" in fake.orders


@pytest_twisted.ensureDeferred
async def test_balance_reads_money_and_credits_with_type_aliases(fake, adapters):
    adapter = adapters(fake)
    assert await aio(adapter.balance()) == [
        Balance(25.5, "EUR"),
        Balance(1000, "SMS:N"),
        Balance(2000, "SMS:L"),
        Balance(3000, "SMS:LL"),
    ]
    assert fake.requests_to("GET", "/status")[0].query == {"getMoney": ["true"], "typeAliases": ["true"]}
    fake.no_balance = True
    assert {b.amount for b in await aio(adapter.balance())} == {0.0}


@pytest_twisted.ensureDeferred
async def test_senders_pages_through_aliases_and_keeps_usable_states(fake, adapters):
    assert await aio(adapters(fake, alias_page_size=2).senders()) == ["MySender", "AgcomOk", "PreConf"]
    assert [r.query["pageNumber"] for r in fake.requests_to("GET", "/alias")] == [["1"], ["2"], ["3"]]


@pytest_twisted.ensureDeferred
async def test_inbound_drains_new_messages_in_pages(fake, adapters):
    for i in range(5):
        fake.add_inbound("+39335624229" + str(i), f"msg {i}", keyword="KW")
    adapter = adapters(fake, inbound_limit=2)
    got = await aio(adapter.inbound())
    assert [m.text for m in got] == [f"msg {i}" for i in range(5)]
    assert (got[0].source, got[0].destination, got[0].provider_id) == (
        "393356242290",
        "393400000001",
        "393400000001:1",
    )
    assert got[0].received_at == datetime.fromtimestamp(START, UTC)
    assert len(fake.requests_to("GET", "/newsrsmsmessage")) == 3
    assert await aio(adapter.inbound()) == []  # "since the last call"


@pytest_twisted.ensureDeferred
async def test_inbound_keeps_the_pages_it_got_when_a_later_page_fails(fake, adapters):
    for i in range(3):
        fake.add_inbound("+393356242290", f"msg {i}")
    fake.fail_next_on("GET", "/newsrsmsmessage", 503, after=1)
    adapter = adapters(fake, inbound_limit=2)
    assert [m.text for m in await aio(adapter.inbound())] == ["msg 0", "msg 1"]  # already marked read
    assert [m.text for m in await aio(adapter.inbound())] == ["msg 2"]


@pytest_twisted.ensureDeferred
async def test_inbound_sims_option_asks_only_those_sims(fake, adapters):
    fake.add_inbound("+393356242290", "for sim 1")
    fake.add_inbound("+393356242290", "for sim 2", id_sim="+393400000002")
    got = await aio(adapters(fake, inbound_sims=["+393400000002"]).inbound())
    assert [m.text for m in got] == ["for sim 2"]
    assert fake.requests_to("GET", "/newsrsmsmessage/.+")[0].path == "/newsrsmsmessage/+393400000002"


@pytest_twisted.ensureDeferred
async def test_webhook_is_not_supported_unless_the_callback_option_is_on(fake, adapters):
    plain = adapters(fake)
    req = WebhookRequest(
        "POST",
        "/webhooks/it",
        {},
        {},
        b"order_id=w1&status=DLVRD&recipient=%2B393471231000&delivery_date=20270115090000",
    )
    with pytest.raises(NotSupported):
        plain.parse_webhook(req)
    aruba = adapters(fake, dlr_callback=True)
    [r] = aruba.parse_webhook(req)
    assert (r.provider_id, r.state, r.destination) == ("w1", DELIVERED, "393471231000")
    assert r.done_at == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)  # 09:00 in Rome
    with pytest.raises(ValueError):
        aruba.parse_webhook(WebhookRequest("POST", "/webhooks/it", {}, {}, b"status=DLVRD"))


# -- config and life cycle -------------------------------------------------------------------


def test_config_errors_name_the_key(fake):
    with pytest.raises(ConfigError, match="providers.it.password"):
        SmSend(ProviderSettings("it", "smsend", fake.url, {"username": "u"}))
    with pytest.raises(ConfigError, match="providers.it.auth"):
        SmSend(ProviderSettings("it", "smsend", fake.url, {"username": "u", "password": "p", "auth": "bad"}))


@pytest_twisted.ensureDeferred
async def test_close_closes_the_one_client(fake, adapters):
    adapter = adapters(fake)
    await aio(adapter.close())
    assert adapter._client.is_closed


def test_fake_from_options_builds_a_configured_fake():
    with FakeSmSend.from_options(0, {"delay": "5", "username": "u", "demo": True}) as f:
        assert (f.delay, f.username, f.demo, f.port > 0) == (5.0, "u", True, True)
    with pytest.raises(ValueError, match="unknown options"):
        FakeSmSend.from_options(0, {"colour": "red"})


@pytest_twisted.ensureDeferred
async def test_a_message_an_earlier_process_may_have_sent_is_looked_up_first(fake, adapters):
    await aio(adapters(fake).send([sms("r1")]))  # sent by a process that died before recording it
    [res] = await aio(adapters(fake).send([replace(sms("r1"), maybe_sent=True)]))  # its successor
    assert res.ok and res.provider_id == "r1"
    assert list(fake.orders) == ["r1"] and len(fake.requests_to("POST", "/sms")) == 1
    [fresh] = await aio(adapters(fake).send([replace(sms("r2"), maybe_sent=True)]))
    assert fresh.ok and list(fake.orders) == ["r1", "r2"]  # not there: sent after the lookup
    assert len(fake.requests_to("GET", "/sms/r2")) == 1
