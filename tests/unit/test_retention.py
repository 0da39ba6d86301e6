"""Retention timing with task.Clock: a pass every purge_every, one small batch per loop turn
while more are due (the store is a stand-in recording its purge calls)."""

from twisted.internet.task import Clock

from smppgw.gateway.retention import Retention


class PurgeLog:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def purge(self, before, limit, done):
        self.calls.append((before, limit))
        done(*self.answers.pop(0))


def test_passes_run_every_interval_and_continue_while_more_is_due():
    clock = Clock()
    clock.advance(100_000)
    store = PurgeLog([(5, True), (5, True), (2, False), (0, False)])
    r = Retention(store, clock, keep_final=3600, batch=5, interval=60)
    r.start()
    clock.advance(59)
    assert store.calls == []
    clock.advance(1)  # one batch per delayed call, all with the pass's cut-off
    assert store.calls == [(100_060 - 3600, 5)] * 3 and r.removed == 12
    clock.advance(59)
    assert len(store.calls) == 3
    clock.advance(1)
    assert store.calls[-1] == (100_120 - 3600, 5) and r.removed == 12


def test_stop_cancels_the_next_pass():
    clock = Clock()
    store = PurgeLog([])
    r = Retention(store, clock, keep_final=10, batch=5, interval=60)
    r.start()
    r.stop()
    clock.advance(600)
    assert store.calls == [] and not clock.getDelayedCalls()
