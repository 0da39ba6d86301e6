"""Protocol depth with StringTransport and task.Clock: throughput, windows, reassembly timeouts
and restarts, held (scheduled) messages, our long deliver_sm, refusal codes and their log.
The gateway behind the session is real (simulator, SQLite file); store commits are delivered
inline so the test controls every step."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smppgw.config import parse
from smppgw.gateway.core import Gateway
from smppgw.metrics import Metrics
from smppgw.providers.simulator import Simulator
from smppgw.server.pdus import deliver_sm_bytes, deliver_sm_for, fits_one
from smppgw.server.protocol import SmppSession
from smppgw.server.sessions import Sessions
from smppgw.server.throttle import Throttles
from smppgw.smpp.codec import Framer, decode, encode
from smppgw.smpp.concat import concat_info, make_udh, sms_capacity, split_user_data
from smppgw.smpp.constants import CommandId, Status, Tag
from smppgw.smpp.pdu import (
    BindTransceiver,
    CancelSm,
    DeliverSmResp,
    QuerySm,
    SubmitSm,
)
from smppgw.smpp.text import gsm_decode, gsm_encode, pack_septets, unpack_after_udh
from smppgw.store.base import OutboxRecord
from smppgw.store.sqlite import SqliteStore
from tests.aio import aio


class Harness:
    def __init__(self, tmp_path, account=None, server=None, clock=None):
        self.clock = clock or Clock()
        self.config = parse(
            {
                "accounts": {"demo": {"password": "demo", **(account or {})}},
                "providers": {"sim": {"type": "simulator", "delay": 1.0}},
                "server": {"window": 10, **(server or {})},
            },
            "t.toml",
        )
        self.calls = []
        self.store = SqliteStore(tmp_path / "gw.db", lambda fn, *a: self.calls.append((fn, a)))
        self.metrics = Metrics()
        self.sim = Simulator(self.config.providers["sim"], clock=self.clock)
        self.gateway = Gateway(self.config, self.store, {"sim": self.sim}, self.metrics, self.clock)
        self.gateway.start()
        self.framer = Framer(100_000)
        self.throttles = Throttles()
        self.proto, self.transport = self.session()

    def session(self):
        proto = SmppSession(
            self.gateway,
            self.config.server,
            self.metrics,
            self.clock,
            sessions=Sessions(),
            throttles=self.throttles,
        )
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def flush_store(self, timeout=10.0):
        end = time.monotonic() + timeout
        while not self.calls and time.monotonic() < end:
            time.sleep(0.005)  # waiting for the writer thread's commit, not for a timer
        while self.calls:
            fn, args = self.calls.pop(0)
            fn(*args)

    def send(self, pdu, proto=None):
        (proto or self.proto).dataReceived(encode(pdu))

    def received(self, transport=None):
        transport = transport or self.transport
        data = transport.value()
        transport.clear()
        return [decode(f) for f in self.framer.feed(data)]

    def bind(self, proto=None, transport=None, version=0x34):
        self.send(BindTransceiver(1, system_id="demo", password="demo", interface_version=version), proto)
        resp, *self.extra = self.received(transport)  # receipts waiting for a receiver may follow
        assert resp.command_status == 0

    def close(self):
        self.gateway.stop()
        self.store.close()


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def submit(seq, text=b"hi", **kw):
    kw.setdefault("registered_delivery", 1)
    return SubmitSm(seq, source_addr_ton=5, source_addr="TEST", dest_addr_ton=1, dest_addr_npi=1,
                    destination_addr="380501234567", short_message=text, **kw)  # fmt: skip


async def turn_loop(clock):
    """Let the dispatcher pump (a zero-delay call on the test clock) and asyncio run the
    provider-send task it started: loop turns, no time passing."""
    for _ in range(3):
        clock.advance(0)
        await aio(asyncio.sleep(0))


# -- throughput and window --------------------------------------------------------------------


def test_throughput_bucket_refuses_only_when_empty_and_refills_with_the_clock(tmp_path):
    h = Harness(tmp_path, account={"throughput": 2, "burst": 3})
    try:
        h.bind()
        for seq in (2, 3, 4):  # a burst at one instant: no minimum gap between PDUs
            h.send(submit(seq))
        h.send(submit(5))
        (refused,) = h.received()
        assert (refused.sequence_number, refused.command_status) == (5, Status.ESME_RTHROTTLED)
        h.clock.advance(0.5)  # one token back at 2/s
        h.send(submit(6))
        h.send(submit(7))
        (refused,) = h.received()
        assert (refused.sequence_number, refused.command_status) == (7, Status.ESME_RTHROTTLED)
        h.flush_store()
        assert sorted(r.sequence_number for r in h.received() if r.command_status == 0) == [2, 3, 4, 6]
    finally:
        h.close()


def test_throughput_is_shared_by_the_sessions_of_an_account(tmp_path):
    h = Harness(tmp_path, account={"throughput": 1, "burst": 1})
    try:
        h.bind()
        other, other_transport = h.session()
        h.bind(other, other_transport)
        h.send(submit(2))
        h.send(submit(3), other)
        (refused,) = h.received(other_transport)
        assert refused.command_status == Status.ESME_RTHROTTLED
    finally:
        h.close()


def test_window_counts_every_request_waiting_for_the_gateway(tmp_path):
    h = Harness(tmp_path, server={"window": 2})
    try:
        h.bind()
        h.send(QuerySm(2, message_id="0000000042"))  # answered from the store: waits for it
        h.send(submit(3))
        h.send(QuerySm(4, message_id="0000000043"))
        (full,) = h.received()
        assert (full.sequence_number, full.command_status) == (4, Status.ESME_RMSGQFUL)
        h.flush_store()
        assert {(r.sequence_number, r.command_status) for r in h.received()} == {
            (2, Status.ESME_RINVMSGID),
            (3, Status.ESME_ROK),
        }
    finally:
        h.close()


# -- long messages ----------------------------------------------------------------------------


def part(seq, i, total, text, ref=9, rd=1):
    return submit(seq, make_udh(ref, total, i) + text, esm_class=0x40, registered_delivery=rd)


@pytest.mark.parametrize(
    "udh, kind",
    [
        ("050003AA0201", "udh8"),
        ("06080412340201", "udh16"),
        ("0B0003AA020105040B8423F0", "udh8"),  # an application port IE after the concat IE
        ("0C050415811581080412340201", "udh16"),  # the port IE first
    ],
)
def test_a_part_knows_whether_its_udh_reference_is_8_or_16_bit(udh, kind):
    from smppgw.gateway.submit import prepare

    fields = prepare(submit(2, bytes.fromhex(udh) + b"part text", esm_class=0x40), 0x34, 0.0)
    assert fields.segment is not None and fields.segment_kind == kind


def test_incomplete_long_message_gets_undeliv_receipts_after_the_reassembly_timeout(tmp_path):
    h = Harness(tmp_path, account={"reassembly_timeout": 30})
    try:
        h.bind()
        h.send(part(2, 1, 2, b"first half "))
        h.flush_store()
        (resp,) = h.received()
        h.clock.advance(29)
        h.flush_store(timeout=0.05)
        assert h.received() == [] and h.sim.sent == 0
        h.clock.advance(2)
        h.flush_store()
        (dlr,) = h.received()
        assert dlr.tlv(Tag.RECEIPTED_MESSAGE_ID) == resp.message_id.encode() + b"\0"
        assert b"stat:UNDELIV" in dlr.short_message and h.sim.sent == 0
    finally:
        h.close()


@pytest_twisted.ensureDeferred
async def test_a_part_waiting_at_a_restart_is_never_sent_and_ends_undeliverable(tmp_path):
    h = Harness(tmp_path, account={"reassembly_timeout": 30})
    h.bind()
    h.send(part(2, 1, 2, b"first half "))
    h.flush_store()
    (resp,) = h.received()
    h.close()  # the gateway stops before part 2 comes

    again = Harness(tmp_path, account={"reassembly_timeout": 30}, clock=h.clock)
    try:
        await turn_loop(h.clock)
        assert again.sim.sent == 0  # a fragment is never sent on its own
        again.clock.advance(31)
        again.flush_store()
        again.bind()
        again.flush_store(timeout=0.05)
        (dlr,) = [p for p in again.extra + again.received() if p.command_id == CommandId.DELIVER_SM]
        assert dlr.tlv(Tag.RECEIPTED_MESSAGE_ID) == resp.message_id.encode() + b"\0"
        assert b"stat:UNDELIV" in dlr.short_message
    finally:
        again.close()


@pytest_twisted.ensureDeferred
async def test_followers_take_every_state_of_the_part_that_went_out(h):
    h.bind()
    h.send(part(2, 2, 2, b"world", rd=0x11))  # intermediate and final receipts asked for
    h.send(part(3, 1, 2, b"hello ", rd=0))
    h.flush_store()
    h.flush_store(timeout=0.05)
    resps = {r.sequence_number: r.message_id for r in h.received()}
    await turn_loop(h.clock)  # the provider takes the joined text
    h.flush_store()
    h.clock.advance(1.0)  # the simulator's final report
    h.flush_store()
    h.flush_store(timeout=0.05)
    got = [
        (p.tlv(Tag.RECEIPTED_MESSAGE_ID)[:-1].decode(), p.short_message.split(b"stat:")[1][:7])
        for p in h.received()
    ]
    assert sorted(got) == [(resps[2], b"DELIVRD"), (resps[2], b"ENROUTE")]  # part 1 asked for none
    assert h.sim.sent == 1


def test_parts_split_inside_an_esc_pair_or_a_surrogate_pair_join_to_the_text():
    text = "€" * 100
    raw = gsm_encode(text)
    first, second = raw[:153], raw[153:]
    assert first.endswith(b"\x1b")
    seg1, body1 = concat_info(0x40, make_udh(1, 2, 1) + first)
    seg2, body2 = concat_info(0x40, make_udh(1, 2, 2) + second)
    assert (seg1.seq, seg2.seq) == (1, 2) and gsm_decode(body1 + body2) == text
    emoji = ("😀" * 40).encode("utf-16-be")
    halves = emoji[:134], emoji[134:]
    assert 0xD8 <= halves[0][-2] <= 0xDB  # a high surrogate ends the first part
    assert (halves[0] + halves[1]).decode("utf-16-be") == "😀" * 40


def test_packed_gsm_after_a_udh_starts_on_the_next_septet_boundary():
    udh = make_udh(1, 2, 1)
    septets = gsm_encode("hello")
    # 6 octets of UDH are 48 bits: the text starts at septet 7 (one fill bit).
    user_data = pack_septets(bytes(7) + septets)
    user_data = udh + user_data[len(udh) :]
    assert gsm_decode(unpack_after_udh(user_data, len(udh))) == "hello"


# -- scheduled messages, cancel, query --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_held_messages_share_one_timer_and_leave_at_their_time(h):
    h.bind()
    h.send(submit(2, schedule_delivery_time="000000001000000R"))  # in 10 minutes
    h.flush_store()
    timers = len(h.clock.getDelayedCalls())
    h.send(submit(3, schedule_delivery_time="000000002000000R"))  # in 20 minutes
    h.flush_store()
    assert len(h.clock.getDelayedCalls()) == timers
    h.clock.advance(600)
    await turn_loop(h.clock)
    assert h.sim.sent == 1
    h.clock.advance(600)
    await turn_loop(h.clock)
    assert h.sim.sent == 2


@pytest_twisted.ensureDeferred
async def test_a_cancelled_message_never_reaches_the_provider(h):
    h.bind()
    h.send(submit(2, schedule_delivery_time="000000001000000R"))
    h.flush_store()
    (resp,) = h.received()
    h.send(CancelSm(3, message_id=resp.message_id))
    h.flush_store()
    h.flush_store(timeout=0.05)
    got = h.received()
    assert [(p.command_id, p.command_status) for p in got if p.command_id == CommandId.CANCEL_SM_RESP] == [
        (CommandId.CANCEL_SM_RESP, 0)
    ]
    h.clock.advance(700)
    await turn_loop(h.clock)
    assert h.sim.sent == 0


@pytest.mark.parametrize("version, state", [(0x34, 1), (0x50, 0)])
def test_query_of_a_held_message_is_enroute_in_34_and_scheduled_in_50(tmp_path, version, state):
    h = Harness(tmp_path)
    try:
        h.bind(version=version)
        h.send(submit(2, schedule_delivery_time="000000001000000R"))
        h.flush_store()
        (resp,) = h.received()
        h.send(QuerySm(3, message_id=resp.message_id, source_addr="TEST"))
        (answer,) = h.received()
        assert (answer.command_status, answer.message_state, answer.final_date) == (0, state, "")
    finally:
        h.close()


# -- our own long deliver_sm ------------------------------------------------------------------


def mo_record(text="Reply from a phone. " * 12, dc=0):
    data = gsm_encode(text) if dc == 0 else text.encode("utf-16-be")
    return OutboxRecord("mo/1", "demo", "mo1", 0, "380501234567", 1, 1, "TEST", 5, 0, 0, dc, data, 0.0)


@pytest.mark.parametrize("mode", ["udh", "sar", "payload"])
def test_long_mo_goes_out_as_the_account_asks(tmp_path, mode):
    h = Harness(tmp_path, account={"long_mo": mode})
    try:
        h.bind()
        answers = []
        record = mo_record()
        h.proto.send_delivery(record, answers.append)
        pdus = h.received()
        if mode == "payload":
            (pdu,) = pdus
            assert pdu.short_message == b"" and pdu.tlv(Tag.MESSAGE_PAYLOAD) == record.short_message
        elif mode == "sar":
            assert len(pdus) == 2 and all(p.esm_class == 0 for p in pdus)
            assert b"".join(p.short_message for p in pdus) == record.short_message
            assert [p.tlv(Tag.SAR_SEGMENT_SEQNUM) for p in pdus] == [b"\x01", b"\x02"]
        else:
            assert len(pdus) == 2 and all(p.esm_class == 0x40 for p in pdus)
            joined = b"".join(concat_info(0x40, p.short_message)[1] for p in pdus)
            assert joined == record.short_message
        for p in pdus:
            assert answers == []  # one answer for the whole record, when every part has one
            h.send(DeliverSmResp(p.sequence_number))
        assert answers == [0]
    finally:
        h.close()


def test_long_mo_to_a_33_bind_is_udh_parts_whatever_the_account_says(tmp_path):
    h = Harness(tmp_path, account={"long_mo": "payload"})
    try:
        h.bind(version=0x33)
        h.proto.send_delivery(mo_record(), lambda status: None)
        pdus = h.received()
        assert len(pdus) == 2 and all(p.esm_class == 0x40 and not p.tlvs for p in pdus)
    finally:
        h.close()


def test_split_never_cuts_an_esc_pair_or_a_surrogate_pair():
    gsm = gsm_encode("a" * 152 + "€" + "b" * 10)
    assert [len(c) for c in split_user_data(gsm, 0, sms_capacity(0, 6))] == [152, 12]
    ucs2 = ("x" * 66 + "😀" + "y").encode("utf-16-be")
    chunks = split_user_data(ucs2, 8, sms_capacity(8, 6))
    assert [len(c) for c in chunks] == [132, 6] and b"".join(chunks).decode("utf-16-be")


def test_enroute_receipts_use_esm_class_0x20_only_where_the_account_asks(tmp_path):
    for esm, expected in ((None, 0x04), (0x20, 0x20)):
        h = Harness(tmp_path / str(expected), account={} if esm is None else {"intermediate_esm_class": esm})
        try:
            h.bind()
            receipt = mo_record()
            receipt.esm_class, receipt.state, receipt.short_message = 0x04, 1, b"id:1 stat:ENROUTE"
            h.proto.send_delivery(receipt, lambda status: None)
            (pdu,) = h.received()
            assert pdu.esm_class == expected and pdu.tlv(Tag.MESSAGE_STATE) == b"\x01"
        finally:
            h.close()


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, status",
    [
        ({"source_addr_ton": 7}, Status.ESME_RINVSRCTON),
        ({"source_addr_npi": 2}, Status.ESME_RINVSRCNPI),
        ({"dest_addr_ton": 7}, Status.ESME_RINVDSTTON),
        ({"dest_addr_npi": 2}, Status.ESME_RINVDSTNPI),
        ({"source_addr": "ALPHANUMERIC12"}, Status.ESME_RINVSRCADR),
        ({"esm_class": 0x08}, Status.ESME_RINVESMCLASS),
        ({"sm_default_msg_id": 1}, Status.ESME_RINVDFTMSGID),
        ({"replace_if_present_flag": 2}, Status.ESME_RINVREPFLAG),
        ({"registered_delivery": 0x21}, Status.ESME_RINVREGDLVFLG),
        ({"priority_flag": 4}, Status.ESME_RINVPRTFLG),
        ({"data_coding": 0xF5}, Status.ESME_RSUBMITFAIL),
        ({"data_coding": 2}, Status.ESME_RSUBMITFAIL),
        ({"esm_class": 0x40, "short_message": b"\x09\x00\x03"}, Status.ESME_RINVESMCLASS),
        ({"tlvs": ((Tag.MESSAGE_PAYLOAD, b"x"),)}, Status.ESME_RINVMSGLEN),
        ({"schedule_delivery_time": "991332000000000+"}, Status.ESME_RINVSCHED),
        ({"validity_period": "000000000000000X"}, Status.ESME_RINVEXPIRY),
    ],
)
def test_message_refusals_get_the_code_smpp34_names(h, fields, status):
    h.bind()
    pdu = submit(2)
    answers = []
    h.gateway.submit(h.gateway.accounts["demo"], pdu.__class__(**{**_fields(pdu), **fields}), 0x34,
                     lambda s, detail: answers.append(s))  # fmt: skip
    assert answers == [status]


def _fields(pdu):
    import dataclasses

    return {f.name: getattr(pdu, f.name) for f in dataclasses.fields(pdu)}


def test_binary_refusals_are_counted_and_explained_once_a_minute(h, caplog):
    h.bind()
    caplog.set_level(logging.WARNING, logger="smppgw.submit")
    for seq in (2, 3, 4):
        h.send(submit(seq, b"\x01\x02", data_coding=4))
    assert {r.command_status for r in h.received()} == {Status.ESME_RSUBMITFAIL}
    lines = [r for r in caplog.records if r.getMessage() == "submit_refused"]
    assert len(lines) == 1 and lines[0].fields["reason"] == "binary_data_coding"
    assert "no HTTP provider carries 8-bit data" in lines[0].fields["detail"]
    h.clock.advance(61)
    h.send(submit(5, b"\x01\x02", data_coding=4))
    lines = [r for r in caplog.records if r.getMessage() == "submit_refused"]
    assert len(lines) == 2 and lines[1].fields["unsaid"] == 2
    assert 'smppgw_bad_pdus_total{reason="binary_data_coding"} 4.0' in h.metrics.exposition().decode()


@pytest.mark.parametrize(
    "account, dc, raw, text",
    [
        ({}, 0, b"\x00\x1b\x65 \x5f", "@€ §"),  # GSM 03.38 unpacked by default, extension table
        ({"dc0_charset": "latin-1"}, 0, b"caf\xe9", "café"),  # clients that mean Latin-1
        ({"dc0_charset": "gsm-packed"}, 0, pack_septets(gsm_encode("packed")), "packed"),
        ({}, 1, b"plain IA5", "plain IA5"),
        ({"dc1_charset": "gsm"}, 1, b"\x5f\x00", "§@"),  # node-smpp sends GSM bytes as dc 1
        ({}, 3, b"\xc0 la carte", "À la carte"),
        ({}, 8, b"\xfe\xff" + "😀 UCS2".encode("utf-16-be"), "😀 UCS2"),  # a leading BOM is dropped
        ({}, 0xF0, b"flash", "flash"),
    ],
)
def test_text_is_decoded_in_the_accounts_charset_for_each_data_coding(tmp_path, account, dc, raw, text):
    h = Harness(tmp_path, account=account)
    try:
        answers = []
        h.gateway.submit(h.gateway.accounts["demo"], submit(2, raw, data_coding=dc), 0x34,
                         lambda status, mid: answers.append((status, mid)))  # fmt: skip
        h.flush_store()
        ((status, mid),) = answers
        assert status == 0 and h.gateway.live[mid].text == text
        assert h.gateway._outbound(h.gateway.live[mid]).flash is (dc == 0xF0)
    finally:
        h.close()


def test_new_account_and_server_settings_are_checked(tmp_path):
    from smppgw.config import ConfigError

    base = {"providers": {"sim": {"type": "simulator"}}}
    for account, key in (
        ({"long_mo": "mms"}, "accounts.demo.long_mo"),
        ({"dc0_charset": "utf-8"}, "accounts.demo.dc0_charset"),
        ({"throughput": -1}, "accounts.demo.throughput"),
        ({"intermediate_esm_class": 8}, "accounts.demo.intermediate_esm_class"),
    ):
        with pytest.raises(ConfigError) as e:
            parse({**base, "accounts": {"demo": {"password": "demo", **account}}})
        assert e.value.key == key
    with pytest.raises(ConfigError) as e:
        parse({**base, "accounts": {"demo": {"password": "demo"}}, "server": {"tls_port": 2776}})
    assert e.value.key == "server.tls_cert"


@pytest.mark.parametrize("version", [0x33, 0x34])
@pytest.mark.parametrize(
    "record",
    [
        mo_record("Short reply"),
        mo_record("Коротко", dc=8),
        OutboxRecord("1/2", "demo", "1", 2, "38050", 1, 1, "TEST", 5, 0, 0x04, 0, b"id:1 stat:DELIVRD", 0.0),
        OutboxRecord("1/1", "demo", "1", 1, "38050", 1, 1, "TEST", 5, 0, 0x04, 0, b"id:1", 0.0, 7, 12),
    ],
)
def test_deliver_sm_bytes_are_the_encoded_deliver_sm(record, version):
    for enroute in (0x04, 0x20):
        expected = encode(deliver_sm_for(record, 9, version, enroute))
        assert fits_one(record) and deliver_sm_bytes(record, 9, version, enroute) == expected
