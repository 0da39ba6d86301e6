"""A provider's requests/s and max_concurrency hold for every process sharing one Redis: two
dispatchers (two "processes", each with its own Redis store) sending to one provider together
stay within one rate and one set of request slots."""

from __future__ import annotations

import asyncio
import time

import pytest_twisted
from twisted.internet import reactor

from smppgw.config import DispatchConfig
from smppgw.gateway.dispatch import Dispatcher
from smppgw.metrics import Metrics
from smppgw.providers.base import Capabilities, OutboundSms, ProviderLimits, SendResult
from tests.aio import aio
from tests.redis.kit import close, make_store, message, until
from tests.redisd import prefix


class Provider:
    """One provider both processes send to: counts requests and how many run at once."""

    name = "club"
    capabilities = Capabilities()

    def __init__(self, rate: float | None, concurrency: int, hold: float) -> None:
        self.limits = ProviderLimits(batch_size=1, max_concurrency=concurrency, requests_per_second=rate)
        self.hold = hold
        self.started: list[float] = []
        self.running = 0
        self.peak = 0

    async def send(self, batch):
        self.started.append(time.monotonic())
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(self.hold)  # the provider's own time to answer
        self.running -= 1
        return [SendResult(s.message_id, provider_id="p" + s.message_id) for s in batch]


def dispatcher(store, provider, sent):
    return Dispatcher(
        {"club": provider},
        DispatchConfig(),
        reactor,
        Metrics(),
        lambda record, result: sent.append(record.id),
        lambda r: OutboundSms(r.id, r.source, r.destination, r.text),
        lambda r: None,
        store=store,
    )


@pytest_twisted.ensureDeferred
async def test_two_processes_share_one_provider_rate(redis_server):
    async def body():
        p = prefix()
        a, _ = make_store(redis_server, p, "a")
        b, _ = make_store(redis_server, p, "b")
        provider, sent = Provider(rate=10, concurrency=8, hold=0.0), []
        dispatchers = [dispatcher(s, provider, sent) for s in (a, b)]
        t0 = time.monotonic()
        for n, d in enumerate(dispatchers):
            for i in range(40):
                d.enqueue(message(n * 100 + i, provider="club"))
        await asyncio.sleep(2.0)  # a bounded load: how many requests two seconds allow
        elapsed = time.monotonic() - t0
        for d in dispatchers:
            d.stop()
        # one bucket of 10/s with a burst of 10 for both, plus one token each may hold on loan
        assert 10 <= len(provider.started) <= 10 + 10 * elapsed + 2, (len(provider.started), elapsed)
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_two_processes_share_one_provider_s_request_slots(redis_server):
    async def body():
        p = prefix()
        a, _ = make_store(redis_server, p, "a")
        b, _ = make_store(redis_server, p, "b")
        provider, sent = Provider(rate=None, concurrency=3, hold=0.05), []
        dispatchers = [dispatcher(s, provider, sent) for s in (a, b)]
        for n, d in enumerate(dispatchers):
            for i in range(30):
                d.enqueue(message(n * 100 + i, provider="club"))
        await until(lambda: len(sent) == 60, timeout=20)
        assert provider.peak <= 3  # never more than max_concurrency in flight, both together
        assert len(provider.started) == 60
        await close(a, b)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_two_processes_keep_sms_club_s_nine_requests_per_second_for_every_call(redis_server):
    """Each process has its own SMS Club adapter; sends, and balance calls besides them, go to
    one strict fake (9 in any sliding second, every call counted): no 429, never 10 in a second."""
    from smppgw.config import ProviderSettings
    from smppgw.fakes.smsclub import FakeSmsClub
    from smppgw.providers.smsclub import SmsClub

    async def body():
        p = prefix()
        a, _ = make_store(redis_server, p, "a")
        b, _ = make_store(redis_server, p, "b")
        with FakeSmsClub(token="t", delay=0.2) as fake:
            settings = ProviderSettings(name="club", type="smsclub", url=fake.url, options={"token": "t"})
            adapters = [SmsClub(settings), SmsClub(settings)]
            sent: list[str] = []
            dispatchers = []
            for n, (store, adapter) in enumerate(zip((a, b), adapters, strict=True)):
                d = Dispatcher(
                    {"club": adapter},
                    DispatchConfig(),
                    reactor,
                    Metrics(),
                    lambda record, result: sent.append(record.id),
                    lambda r: OutboundSms(r.id, "VashZakaz", "380671234599", r.text),
                    lambda r: None,
                    store=store,
                )
                dispatchers.append(d)
                for i in range(8):  # a text each: one send request each
                    d.enqueue(message(n * 100 + i, provider="club", text=f"text {n} {i}"))
            balances = [adapter.balance() for adapter in adapters for _ in range(6)]
            await asyncio.gather(*balances)
            await until(lambda: len(sent) == 16, timeout=20)
            for d in dispatchers:
                d.stop()
            for adapter in adapters:
                await adapter.close()
            calls = len(fake.requests)
            assert fake.throttled == 0
            assert calls >= 28 and fake.most_in_any_second() <= 9, (calls, fake.most_in_any_second())
        await close(a, b)

    await aio(body())
