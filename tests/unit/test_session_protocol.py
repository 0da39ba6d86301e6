"""The SMPP session protocol with StringTransport and task.Clock: timers, windows, framing and
refusals, without sockets or sleeps. The gateway behind it is real (simulator, SQLite file);
store commits are delivered inline so the test controls every step."""

from __future__ import annotations

import asyncio
import struct

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smppgw.config import parse
from smppgw.gateway.core import Gateway
from smppgw.metrics import Metrics
from smppgw.providers.simulator import Simulator
from smppgw.server.protocol import SmppSession
from smppgw.smpp.codec import Framer, decode, encode
from smppgw.smpp.constants import CommandId, Status
from smppgw.smpp.pdu import (
    AlertNotification,
    BindTransceiver,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    Unbind,
    UnbindResp,
)
from smppgw.store.sqlite import SqliteStore
from tests.aio import aio


class Harness:
    def __init__(self, tmp_path, **server):
        self.clock = Clock()
        self.config = parse(
            {
                "accounts": {"demo": {"password": "demo"}},
                "providers": {"sim": {"type": "simulator", "delay": 1.0}},
                "server": {
                    "enquire_link_interval": 60,
                    "inactivity_timeout": 300,
                    "response_timeout": 30,
                    "session_init_timeout": 20,
                    "window": 3,
                    **server,
                },
            },
            "t.toml",
        )
        self.calls = []
        self.store = SqliteStore(tmp_path / "gw.db", self._later)
        self.metrics = Metrics()
        self.sim = Simulator(self.config.providers["sim"], clock=self.clock)
        self.gateway = Gateway(self.config, self.store, {"sim": self.sim}, self.metrics, self.clock)
        self.gateway.start()
        self.proto = SmppSession(self.gateway, self.config.server, self.metrics, self.clock)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.framer = Framer(100_000)

    def _later(self, fn, *args):
        self.calls.append((fn, args))

    def flush_store(self, timeout=10.0):
        """Run the callbacks of committed writes (what callFromThread would do on the reactor)."""
        import time

        end = time.monotonic() + timeout
        while not self.calls and time.monotonic() < end:
            time.sleep(0.005)  # waiting for the writer thread's commit, not for a timer
        while self.calls:
            fn, args = self.calls.pop(0)
            fn(*args)

    def send(self, pdu):
        self.proto.dataReceived(encode(pdu))

    def received(self):
        data = self.transport.value()
        self.transport.clear()
        return [decode(f) for f in self.framer.feed(data)]

    def bind(self):
        self.send(
            BindTransceiver(sequence_number=1, system_id="demo", password="demo", interface_version=0x34)
        )
        (resp,) = self.received()
        assert resp.command_status == 0
        return resp

    def close(self):
        self.store.close()


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def submit(seq, dest="380501234567"):
    return SubmitSm(
        sequence_number=seq,
        source_addr="TEST",
        destination_addr=dest,
        short_message=b"hi",
        registered_delivery=1,
    )


def test_bind_resp_carries_system_id_and_interface_version(h):
    resp = h.bind()
    assert resp.command_id == CommandId.BIND_TRANSCEIVER_RESP
    assert resp.system_id == "smppgw"
    assert resp.tlv(0x0210) == b"\x34"


def test_no_bind_within_session_init_timeout_closes(h):
    h.clock.advance(19)
    assert not h.transport.disconnecting
    h.clock.advance(2)
    assert h.transport.disconnecting


def test_enquire_link_is_answered_before_bind(h):
    h.send(EnquireLink(sequence_number=7))
    (resp,) = h.received()
    assert resp == EnquireLinkResp(sequence_number=7)


def test_idle_session_gets_our_enquire_link_and_is_unbound_when_it_goes_unanswered(h):
    h.bind()
    h.clock.advance(59)
    assert h.received() == []
    h.clock.advance(1)
    (el,) = h.received()
    assert el.command_id == CommandId.ENQUIRE_LINK
    h.clock.advance(30)  # response timer runs out: we unbind
    (unbind,) = h.received()
    assert unbind.command_id == CommandId.UNBIND
    assert not h.transport.disconnecting
    h.clock.advance(30)  # no unbind_resp either (smpplib never answers): close anyway
    assert h.transport.disconnecting


def test_answered_enquire_link_keeps_the_session(h):
    h.bind()
    for _ in range(5):
        h.clock.advance(60)
        (el,) = h.received()
        h.send(EnquireLinkResp(sequence_number=el.sequence_number))
    h.clock.advance(29)
    assert not h.transport.disconnecting
    assert h.received() == []


def test_unbind_from_esme_is_answered_and_closes(h):
    h.bind()
    h.send(Unbind(sequence_number=9))
    (resp,) = h.received()
    assert resp == UnbindResp(sequence_number=9)
    assert h.transport.disconnecting


def test_submit_is_acked_only_after_commit(h):
    h.bind()
    h.send(submit(2))
    assert h.received() == []  # not committed yet: no resp
    h.flush_store()
    (resp,) = h.received()
    assert resp.command_id == CommandId.SUBMIT_SM_RESP and resp.command_status == 0
    assert resp.message_id == "0000000001"


def test_submits_beyond_the_window_get_rmsgqful(h):
    h.bind()
    for seq in range(2, 6):
        h.send(submit(seq))
    (full,) = h.received()
    assert (full.sequence_number, full.command_status) == (5, Status.ESME_RMSGQFUL)
    h.flush_store()
    assert sorted(r.sequence_number for r in h.received()) == [2, 3, 4]


async def turn_loop(clock):
    """Let the dispatcher pump (a zero-delay call on the test clock) and asyncio run the
    provider-send task it started: loop turns, no time passing."""
    for _ in range(3):
        clock.advance(0)
        await aio(asyncio.sleep(0))


@pytest_twisted.ensureDeferred
async def test_receipt_is_resent_when_the_esme_does_not_answer_in_time(h):
    h.bind()
    h.send(submit(2))
    h.flush_store()
    h.received()
    await turn_loop(h.clock)  # the simulator accepts the message
    h.flush_store()  # ENROUTE state committed
    h.clock.advance(1.0)  # simulator reports DELIVRD
    h.flush_store()  # state + receipt committed
    (dlr,) = h.received()
    assert dlr.command_id == CommandId.DELIVER_SM and dlr.esm_class == 0x04
    h.clock.advance(30)  # no deliver_sm_resp: response timer
    assert h.received() == []
    h.clock.advance(5)  # first retry after retry_initial
    (again,) = [p for p in h.received() if p.command_id == CommandId.DELIVER_SM]
    assert again.short_message == dlr.short_message
    assert again.sequence_number != dlr.sequence_number
    h.send(DeliverSmResp(sequence_number=again.sequence_number))
    assert h.gateway.outbox.depth("demo") == 0


@pytest_twisted.ensureDeferred
async def test_deliver_sm_resp_answers_from_its_header_unless_its_body_is_malformed(h):
    h.bind()
    h.send(submit(2))
    h.flush_store()
    h.received()
    await turn_loop(h.clock)
    h.flush_store()
    h.clock.advance(1.0)
    h.flush_store()
    (dlr,) = h.received()
    seq = dlr.sequence_number
    # status 0 and a message_id without its NUL: not a deliver_sm_resp decode accepts
    h.proto.dataReceived(struct.pack(">IIII", 19, CommandId.DELIVER_SM_RESP, 0, seq) + b"abc")
    assert h.gateway.outbox.depth("demo") == 1
    assert h.metrics.child(h.metrics.bad_pdus, "ESME_RINVPARLEN")._value.get() == 1
    # with a message_id and trailing octets (a 5.0 peer's TLVs): the answer
    h.proto.dataReceived(struct.pack(">IIII", 22, CommandId.DELIVER_SM_RESP, 0, seq) + b"ab\0xyz")
    assert h.gateway.outbox.depth("demo") == 0


def test_sequence_numbers_wrap_to_one(h):
    h.proto._seq = 0x7FFFFFFE
    assert h.proto.next_sequence() == 0x7FFFFFFF
    assert h.proto.next_sequence() == 1


def test_command_length_over_the_cap_gets_generic_nack_and_close(tmp_path):
    hh = Harness(tmp_path, max_pdu_length=1024)
    try:
        hh.proto.dataReceived(
            (5000).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4) + (3).to_bytes(4, "big")
        )
        (nack,) = hh.received()
        assert nack.command_id == CommandId.GENERIC_NACK
        assert nack.command_status == Status.ESME_RINVCMDLEN
        assert hh.transport.disconnecting
    finally:
        hh.close()


def test_unexpected_response_and_alert_notification_get_no_answer(h):
    h.bind()
    h.send(DeliverSmResp(sequence_number=99))
    h.send(AlertNotification(sequence_number=5, source_addr="1", esme_addr="2"))
    assert h.received() == []
    assert not h.transport.disconnecting
    h.send(EnquireLink(sequence_number=3))
    assert h.received() == [EnquireLinkResp(sequence_number=3)]
