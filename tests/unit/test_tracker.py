"""Status polling alone (one layer): batches of the provider's poll size, a growing gap between
polls of one message, and the horizon after which a message gets a final UNKNOWN."""

from __future__ import annotations

import asyncio

import pytest_twisted
from twisted.internet.task import Clock

from smppgw.config import ProviderSettings
from smppgw.gateway.tracker import Tracker
from smppgw.metrics import Metrics
from smppgw.providers.base import DELIVERED, ENROUTE, Capabilities, ProviderLimits, StatusReport
from smppgw.store.base import MessageRecord
from tests.aio import aio


class Polled:
    name = "p"
    capabilities = Capabilities(poll=True)
    limits = ProviderLimits(poll_batch_size=2)

    def __init__(self):
        self.polls: list[tuple[float, list[str]]] = []
        self.final: set[str] = set()
        self.clock = None

    async def poll(self, ids):
        self.polls.append((self.clock.seconds(), list(ids)))
        return [StatusReport(i, DELIVERED if i in self.final else ENROUTE, "X") for i in ids]


def record(i):
    return MessageRecord(
        id=str(i),
        account="a",
        source="S",
        source_ton=0,
        source_npi=0,
        destination="1",
        dest_ton=0,
        dest_npi=0,
        text="t",
        data_coding=0,
        esm_class=0,
        registered_delivery=1,
        submitted_at=0.0,
        state=ENROUTE,
        provider="p",
        provider_id=f"pid{i}",
    )


def make(horizon=100.0):
    clock, provider = Clock(), Polled()
    provider.clock = clock
    live = {}
    reports, expired = [], []

    def on_report(name, report):
        reports.append(report)
        if report.state == DELIVERED:
            live.pop(report.provider_id[3:], None)

    def on_horizon(r):
        expired.append(r.id)
        live.pop(r.id, None)

    settings = {"p": ProviderSettings("p", "x", "http://x", poll_first=2.0, poll_max_gap=8.0)}
    t = Tracker(
        {"p": provider},
        settings,
        clock,
        Metrics(),
        horizon,
        live.get,
        lambda: list(live.values()),
        on_report,
        on_horizon,
    )
    return t, clock, provider, live, reports, expired


async def turn():
    for _ in range(3):
        await aio(asyncio.sleep(0))


async def run_until(clock, seconds):
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await turn()


@pytest_twisted.ensureDeferred
async def test_polls_go_in_batches_of_the_poll_size_and_stop_at_a_final_status():
    t, clock, provider, live, reports, _ = make()
    for i in range(3):
        live[str(i)] = record(i)
        t.track(live[str(i)])
    provider.final = {"pid0", "pid1", "pid2"}
    await run_until(clock, 3)
    assert sorted(len(ids) for _, ids in provider.polls) == [1, 2]
    await run_until(clock, 30)
    assert len(provider.polls) == 2  # all final: no more polls
    assert sorted(r.provider_id for r in reports) == ["pid0", "pid1", "pid2"]


@pytest_twisted.ensureDeferred
async def test_the_gap_between_polls_doubles_up_to_poll_max_gap():
    t, clock, provider, live, _, _ = make()
    live["1"] = record(1)
    t.track(live["1"])
    await run_until(clock, 40)
    times = [at for at, _ in provider.polls]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times[0] == 2.0
    assert gaps[:3] == [4.0, 8.0, 8.0]


@pytest_twisted.ensureDeferred
async def test_no_final_status_by_the_horizon_gives_the_horizon_callback():
    t, clock, provider, live, _, expired = make(horizon=20.0)
    live["1"] = record(1)
    t.track(live["1"])
    await run_until(clock, 19)
    assert expired == []
    await run_until(clock, 10)
    assert expired == ["1"]
    polls = len(provider.polls)
    await run_until(clock, 30)
    assert len(provider.polls) == polls  # ended: no more polls


def test_the_sweep_ends_messages_of_providers_that_are_never_polled():
    t, clock, _, live, _, expired = make(horizon=50.0)
    live["9"] = record(9)  # e.g. a webhook-only provider: nobody polls it
    t.start()
    clock.advance(60)  # the sweep runs once a minute
    assert expired == ["9"]
