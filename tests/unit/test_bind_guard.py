"""The bind guard and the session registry on their own, and a session's failed binds answered
late or refused, on twisted.internet.task.Clock (no sleeps)."""

from __future__ import annotations

import struct

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smppgw.server.guard import BindGuard
from smppgw.server.sessions import Sessions
from smppgw.smpp.codec import encode
from smppgw.smpp.pdu import BindTransmitter

RINVPASWD, RBINDFAIL, RALYBND = 0x0E, 0x0D, 0x05


def test_each_failure_doubles_the_delay_up_to_its_cap_then_locks_the_address_out():
    g = BindGuard(delay=0.5, delay_max=4.0, lockout_after=6, lockout_for=300)
    delays = [g.failed("127.0.0.2", 10.0 + i) for i in range(6)]
    assert delays == [(0.5, False), (1.0, False), (2.0, False), (4.0, False), (4.0, False), (4.0, True)]
    assert g.locked("127.0.0.2", 20.0) and not g.locked("127.0.0.2", 15.0 + 300)
    assert not g.locked("127.0.0.3", 20.0)  # another address is not touched


def test_a_good_bind_and_time_clear_an_address():
    g = BindGuard(delay=1.0, delay_max=8.0, lockout_after=10, forget_after=60)
    g.failed("a", 0.0)
    g.failed("a", 1.0)
    g.succeeded("a")
    assert g.failed("a", 2.0) == (1.0, False)
    assert g.failed("a", 3.0) == (2.0, False)
    assert g.failed("a", 100.0) == (1.0, False)  # older than forget_after: counts again from one


def test_zero_turns_delays_and_lockout_off():
    g = BindGuard(delay=0.0, lockout_after=0)
    assert [g.failed("a", float(i)) for i in range(20)] == [(0.0, False)] * 20
    assert not g.locked("a", 20.0)


def test_memory_stays_bounded_under_many_addresses():
    g = BindGuard(max_tracked=100, forget_after=1000)
    for i in range(1000):
        g.failed(f"10.0.{i // 250}.{i % 250}", float(i))
    assert g.tracked() <= 100


def test_sessions_count_unbound_connections_per_address():
    s = Sessions()
    a, b, c = object(), object(), object()
    s.add(a, "127.0.0.2")
    s.add(b, "127.0.0.2")
    s.add(c, "127.0.0.3")
    assert (len(s), s.unbound, s.unbound_by_address["127.0.0.2"]) == (3, 3, 2)
    s.bound(a)
    s.bound(a)  # twice counts once
    assert (s.unbound, s.unbound_by_address["127.0.0.2"]) == (2, 1)
    s.discard(a)
    s.discard(b)
    s.discard(b)
    assert (len(s), s.unbound, dict(s.unbound_by_address)) == (1, 1, {"127.0.0.3": 1})
    assert list(s) == [c] and c in s


class _Gateway:
    """Only what a bind asks of the gateway: every password but "demo" is wrong."""

    def authenticate(self, system_id, password, member, done):
        from smppgw.config import Account

        done(Account(system_id, "demo") if password == "demo" else RINVPASWD)

    def session_bound(self, session, receives):
        pass

    def session_gone(self, session):
        pass

    def release_bind(self, system_id, member):
        pass


def _session(clock, guard, host="127.0.0.2"):
    from smppgw.config import ServerConfig
    from smppgw.metrics import Metrics
    from smppgw.server.protocol import SmppSession

    proto = SmppSession(_Gateway(), ServerConfig(), Metrics(), clock, sessions=Sessions(), guard=guard)
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    proto.makeConnection(transport)
    return proto, transport


def _statuses(transport) -> list[int]:
    data, out = transport.value(), []
    while data:
        length, _, status, _ = struct.unpack(">IIII", data[:16])
        out.append(status)
        data = data[length:]
    transport.clear()
    return out


def test_a_wrong_password_is_answered_only_after_the_guard_s_delay():
    clock, guard = Clock(), BindGuard(delay=0.5, delay_max=8.0, lockout_after=3, lockout_for=60)
    proto, transport = _session(clock, guard)
    proto.dataReceived(encode(BindTransmitter(1, 0, system_id="demo", password="nope")))
    assert _statuses(transport) == []
    proto.dataReceived(encode(BindTransmitter(2, 0, system_id="demo", password="demo")))
    assert _statuses(transport) == [RALYBND]  # the first is still being answered
    clock.advance(0.5)
    assert _statuses(transport) == [RINVPASWD]
    proto.dataReceived(encode(BindTransmitter(3, 0, system_id="demo", password="nope")))
    clock.advance(0.9)
    assert _statuses(transport) == []
    clock.advance(0.1)
    assert _statuses(transport) == [RINVPASWD]  # 1 s: doubled


def test_a_locked_out_address_is_refused_at_once_even_with_the_right_password():
    clock, guard = Clock(), BindGuard(delay=0.1, delay_max=0.1, lockout_after=2, lockout_for=60)
    proto, transport = _session(clock, guard)
    for seq in (1, 2):
        proto.dataReceived(encode(BindTransmitter(seq, 0, system_id="demo", password="nope")))
        clock.advance(0.1)
    assert _statuses(transport) == [RINVPASWD, RINVPASWD]
    proto.dataReceived(encode(BindTransmitter(3, 0, system_id="demo", password="demo")))
    assert _statuses(transport) == [RBINDFAIL]
    other, other_t = _session(clock, guard, host="127.0.0.3")
    other.dataReceived(encode(BindTransmitter(1, 0, system_id="demo", password="demo")))
    assert _statuses(other_t) == [0]  # another address binds at once
    clock.advance(60)
    again, again_t = _session(clock, guard)
    again.dataReceived(encode(BindTransmitter(1, 0, system_id="demo", password="demo")))
    assert _statuses(again_t) == [0]  # the lockout ended


def test_the_guard_and_flood_caps_are_read_from_server_and_checked():
    import pytest

    from smppgw.config import ConfigError, parse

    base = {"accounts": {"demo": {"password": "demo"}}, "providers": {"sim": {"type": "simulator"}}}
    cfg = parse({**base, "server": {"bind_lockout_after": 0, "max_unbound_per_ip": 5}}, "gw.toml")
    assert (cfg.server.bind_lockout_after, cfg.server.max_unbound_per_ip, cfg.server.bind_fail_delay) == (
        0,
        5,
        0.5,
    )
    with pytest.raises(ConfigError) as e:
        parse({**base, "server": {"max_connections": -1}}, "gw.toml")
    assert str(e.value) == "gw.toml: server.max_connections: expected an integer of 0 or more, got -1"
