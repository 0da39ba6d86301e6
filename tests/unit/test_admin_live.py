"""The live view's rates and circuit words alone, with task.Clock (no sockets)."""

from __future__ import annotations

from twisted.internet.task import Clock

from smppgw.admin.live import SAMPLE_EVERY, Rates, circuit
from smppgw.gateway.dispatch import Breaker
from smppgw.web.admin import iso


def test_rate_is_over_the_last_minute_of_samples():
    rates, clock = Rates(), Clock()
    count = 0
    for _ in range(30):  # 150 s at 10 a second, sampled every 5 s
        clock.advance(SAMPLE_EVERY)
        count += 50
        rates.sample("s", clock.seconds(), count)
    assert rates.rate("s", clock.seconds(), count) == 10.0
    for _ in range(6):  # then 30 s of silence: the minute holds half traffic, half silence
        clock.advance(SAMPLE_EVERY)
        rates.sample("s", clock.seconds(), count)
    assert rates.rate("s", clock.seconds(), count) == 5.0
    for _ in range(12):
        clock.advance(SAMPLE_EVERY)
        rates.sample("s", clock.seconds(), count)
    assert rates.rate("s", clock.seconds(), count) == 0.0


def test_a_new_key_counts_from_its_start_until_it_has_samples():
    rates = Rates()
    assert rates.rate("new", 100.0, 20, since=96.0) == 5.0  # bound 4 s ago, 20 submits
    assert rates.rate("new", 100.0, 20) == 0.0  # nothing to measure from
    rates.sample("new", 100.0, 20)
    assert rates.rate("new", 100.0, 20, since=96.0) == 5.0  # a sample taken now is no base
    rates.keep([])
    assert rates.rate("new", 102.0, 30) == 0.0


def test_circuit_words_follow_the_breaker():
    br = Breaker(threshold=1, cooldown=10)
    assert circuit(br, 0) == "closed"
    br.record(False, 0)
    assert circuit(br, 5) == "open"
    assert circuit(br, 10) == "half-open"
    br.allows(10)
    assert circuit(br, 11) == "half-open"  # the trial is in flight
    br.record(True, 11)
    assert circuit(br, 11) == "closed"


def test_times_are_utc_iso_with_milliseconds():
    assert iso(0.5) == "1970-01-01T00:00:00.500Z" and iso(None) is None
