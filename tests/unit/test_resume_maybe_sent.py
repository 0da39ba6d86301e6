"""A message the gateway resumes (after a restart, or taken over from a process that died) may
have reached its provider already: its first send carries `maybe_sent`, so that an adapter with a
client reference or a duplicate rule checks before sending again. A fresh submit does not."""

from __future__ import annotations

import asyncio
import threading

import pytest_twisted
from twisted.internet.task import Clock

from smppgw.config import parse
from smppgw.gateway.core import Gateway
from smppgw.metrics import Metrics
from smppgw.providers.simulator import Simulator
from smppgw.store.base import InsertMessage
from smppgw.store.sqlite import SqliteStore
from tests.aio import aio
from tests.redis.kit import message


class Recording(Simulator):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.batches = []

    async def send(self, batch):
        self.batches.append(list(batch))
        return await super().send(batch)


@pytest_twisted.ensureDeferred
async def test_a_resumed_message_is_sent_with_maybe_sent_and_a_new_one_without(tmp_path):
    config = parse({"accounts": {"demo": {"password": "demo"}}, "providers": {"sim": {"type": "simulator"}}})
    calls = []
    done = threading.Event()
    first = SqliteStore(tmp_path / "gw.db", lambda fn, *a: fn(*a))
    first.open()
    first.write([InsertMessage(message(1, provider="sim"))], lambda e: done.set())
    assert done.wait(10)
    first.close()  # the process that stored it died before sending it

    clock = Clock()
    store = SqliteStore(tmp_path / "gw.db", lambda fn, *a: calls.append((fn, a)))
    sim = Recording(config.providers["sim"], clock=clock)
    gateway = Gateway(config, store, {"sim": sim}, Metrics(), clock)
    gateway.start()
    try:
        for _ in range(3):
            clock.advance(0)
            await aio(asyncio.sleep(0))
        assert [[(s.message_id, s.maybe_sent) for s in b] for b in sim.batches] == [[("0000000001", True)]]
        gateway._dispatch(message(2, provider="sim"))  # a fresh message, never sent before
        for _ in range(3):
            clock.advance(0)
            await aio(asyncio.sleep(0))
        assert [(s.message_id, s.maybe_sent) for s in sim.batches[-1]] == [("0000000002", False)]
    finally:
        gateway.stop()
        store.close()
