"""The dispatcher alone (one layer): batching, rate limit, retries, failover and the circuit
breaker, with in-process providers and task.Clock."""

from __future__ import annotations

import asyncio

import pytest_twisted
from twisted.internet.task import Clock

from smppgw.config import DispatchConfig
from smppgw.gateway.dispatch import Breaker, Dispatcher
from smppgw.metrics import Metrics
from smppgw.providers.base import Capabilities, OutboundSms, ProviderLimits, Retryable, SendResult
from smppgw.store.base import MessageRecord
from tests.aio import aio


class Provider:
    capabilities = Capabilities()

    def __init__(self, name, fail=False, batch_size=10, rps=None):
        self.name, self.fail = name, fail
        self.limits = ProviderLimits(batch_size=batch_size, max_concurrency=2, requests_per_second=rps)
        self.requests: list[list[str]] = []

    async def send(self, batch):
        self.requests.append([m.message_id for m in batch])
        if self.fail:
            raise Retryable("down")
        return [SendResult(m.message_id, provider_id="p" + m.message_id) for m in batch]


def record(i, provider="a"):
    return MessageRecord(
        id=str(i),
        account="demo",
        source="S",
        source_ton=0,
        source_npi=0,
        destination="3805",
        dest_ton=1,
        dest_npi=1,
        text="t",
        data_coding=0,
        esm_class=0,
        registered_delivery=1,
        submitted_at=0.0,
        provider=provider,
    )


def make(providers, chain, **cfg):
    clock = Clock()
    results = []
    d = Dispatcher(
        providers,
        DispatchConfig(**{"retry_initial": 1.0, "retry_max": 1.0, **cfg}),
        clock,
        Metrics(),
        lambda r, res: results.append((r.id, r.provider, res)),
        lambda r: OutboundSms(r.id, r.source, r.destination, r.text),
        lambda r: next((p for p in chain[chain.index(r.provider) + 1 :]), None),
    )
    return d, clock, results


async def turn(clock=None):
    for _ in range(5):
        if clock is not None:
            clock.advance(0)  # the dispatcher pumps once per loop turn
        await aio(asyncio.sleep(0))


@pytest_twisted.ensureDeferred
async def test_messages_go_in_batches_of_the_provider_limit():
    a = Provider("a", batch_size=3)
    d, clock, results = make({"a": a}, ["a"])
    for i in range(7):
        d.enqueue(record(i))
    await turn(clock)
    # the first messages go at once (no waiting to fill a batch); the rest, queued behind the
    # two requests in flight, go in batches no larger than the limit
    sizes = [len(b) for b in a.requests]
    assert sum(sizes) == 7 and max(sizes) == 3
    assert len(results) == 7 and all(res.ok for _, _, res in results)


@pytest_twisted.ensureDeferred
async def test_requests_per_second_is_kept_with_a_token_bucket():
    a = Provider("a", batch_size=1, rps=2)
    d, clock, results = make({"a": a}, ["a"])
    for i in range(6):
        d.enqueue(record(i))
    await turn(clock)
    assert len(a.requests) == 2  # the burst
    sent = []
    for _ in range(4):
        clock.advance(0.5)  # one token each half second at 2/s
        await turn(clock)
        sent.append(len(a.requests))
    assert sent == [3, 4, 5, 6]


@pytest_twisted.ensureDeferred
async def test_retryable_failures_fail_over_after_max_attempts():
    a, b = Provider("a", fail=True), Provider("b")
    d, clock, results = make({"a": a, "b": b}, ["a", "b"], max_attempts=3, breaker_threshold=100)
    d.enqueue(record(1))
    await turn(clock)
    for _ in range(3):
        clock.advance(1.0)
        await turn(clock)
    assert len(a.requests) == 3
    assert [(mid, prov, res.ok) for mid, prov, res in results] == [("1", "b", True)]


@pytest_twisted.ensureDeferred
async def test_no_provider_left_reports_the_last_error():
    a = Provider("a", fail=True)
    d, clock, results = make({"a": a}, ["a"], max_attempts=2, breaker_threshold=100)
    d.enqueue(record(1))
    await turn(clock)
    clock.advance(1.0)
    await turn(clock)
    assert len(results) == 1 and results[0][2].error.retryable


@pytest_twisted.ensureDeferred
async def test_open_breaker_sends_new_messages_to_the_next_provider_and_retries_after_cooldown():
    a, b = Provider("a", fail=True, batch_size=1), Provider("b")
    d, clock, results = make(
        {"a": a, "b": b}, ["a", "b"], max_attempts=100, breaker_threshold=2, breaker_cooldown=30
    )
    d.enqueue(record(1))
    d.enqueue(record(2))
    await turn(clock)
    assert len(a.requests) == 2  # two failed requests: the breaker opens
    assert d.circuits() == [("a", True), ("b", False)]
    d.enqueue(record(3))
    await turn(clock)
    assert len(a.requests) == 2
    assert ("3", "b", True) in [(m, p, r.ok) for m, p, r in results]
    a.fail = False
    clock.advance(30)  # cool-down over: the retries of 1 and 2 come back, one trial goes to a
    await turn(clock)
    clock.advance(1)
    await turn(clock)
    assert len(a.requests) >= 3
    assert sorted(m for m, _, r in results if r.ok) == ["1", "2", "3"]
    assert d.circuits() == [("a", False), ("b", False)]  # the good trial closed it


def test_breaker_closes_after_a_good_trial_and_reopens_after_a_bad_one():
    br = Breaker(threshold=2, cooldown=10)
    assert br.allows(0) and not br.record(False, 0) and br.record(False, 0)
    assert not br.allows(5)
    assert br.allows(10) and not br.allows(10)  # one trial at a time
    br.record(False, 10)
    assert not br.allows(15) and br.allows(20)
    br.record(True, 20)
    assert br.allows(20) and br.failures == 0


@pytest_twisted.ensureDeferred
async def test_a_paused_provider_gets_no_requests_its_queue_fails_over_or_waits_until_resume():
    a, b, solo = Provider("a"), Provider("b"), Provider("solo")
    d, clock, results = make({"a": a, "b": b, "solo": solo}, ["a", "b", "solo"])
    assert d.pause("a") == (0, 0)
    d.enqueue(record(1))  # new messages for a go to b at once
    assert d.pause("solo") == (0, 0)
    d.enqueue(record(2, provider="solo"))  # last of its chain: waits
    d.enqueue(record(3, provider="solo"))
    await turn(clock)
    assert a.requests == [] and b.requests == [["1"]] and solo.requests == []
    assert len(d.lanes["solo"].queue) == 2
    assert d.resume("solo") == 2
    await turn(clock)
    assert solo.requests == [["2", "3"]]
    assert sorted((m, p) for m, p, _ in results) == [("1", "b"), ("2", "solo"), ("3", "solo")]


@pytest_twisted.ensureDeferred
async def test_pausing_moves_what_is_queued_and_a_swapped_adapter_takes_new_requests():
    a, b = Provider("a", batch_size=1), Provider("b")
    d, clock, results = make({"a": a, "b": b}, ["a", "b"])
    for i in range(5):
        d.enqueue(record(i))  # queued; the pump runs at the next loop turn
    assert d.pause("a") == (5, 0)
    await turn(clock)
    assert a.requests == [] and sorted(sum(b.requests, [])) == ["0", "1", "2", "3", "4"]
    d.resume("a")
    a2 = Provider("a")
    d.set_provider("a", a2)
    d.enqueue(record(9))
    await turn(clock)
    assert a.requests == [] and a2.requests == [["9"]]


@pytest_twisted.ensureDeferred
async def test_a_failed_request_is_kept_as_the_lane_last_error():
    a = Provider("a", fail=True)
    d, clock, results = make({"a": a}, ["a"], max_attempts=5, breaker_threshold=100)
    clock.advance(42)
    d.enqueue(record(1))
    await turn(clock)
    assert d.lanes["a"].last_error == (42.0, "retryable", "down")
