"""Protocol depth end to end over real TCP: long messages in each form and out of order,
submit_multi, query_sm, cancel_sm, replace_sm, data_sm, SMPP over TLS, and a second,
independently written client (aiosmpplib) beside smpplib. The gateway runs in the test reactor
with the simulator provider and a real SQLite file; what reaches the provider is recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import time

import pytest_twisted
import smpplib.client
import smpplib.gsm
from twisted.internet.threads import deferToThread

from smppgw.smpp.codec import Framer, decode, encode
from smppgw.smpp.concat import make_udh
from smppgw.smpp.constants import Status, Tag
from smppgw.smpp.pdu import (
    BindTransceiver,
    CancelSm,
    DataSm,
    DeliverSmResp,
    DistributionList,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
)
from tests.e2e.harness import Esme, connect, receipt_fields, smpp_port, start_app

GSM_LONG = "{" * 100 + "Long GSM text with [brackets] and the euro €. " * 4  # ESC pairs across parts
EMOJI_LONG = "Привіт 😀 " * 30  # UCS2 with surrogate pairs; 134-octet parts split some of them


def recording(app) -> list[str]:
    """The texts the simulator provider is asked to send, in order."""
    sim = app.providers["sim"]
    texts: list[str] = []
    send = sim.send

    async def send_and_record(batch):
        texts.extend(sms.text for sms in batch)
        return await send(batch)

    sim.send = send_and_record
    return texts


@pytest_twisted.async_yield_fixture
async def gw(tmp_path):
    app = start_app(tmp_path)
    app.texts = recording(app)
    yield app
    await app.stop(grace=1.0)


def _parts_scenario(port, parts, rd=1, dc=0, esm=0, extra=None, receipts=None):
    esme = connect(port)
    for i, part in enumerate(parts):
        kw = dict(extra[i]) if extra else {}
        esme.submit(text=part, rd=rd[i] if isinstance(rd, list) else rd, data_coding=dc, esm_class=esm, **kw)
    assert esme.pump(lambda: len(esme.resps) == len(parts))
    want = len(parts) if receipts is None else receipts
    esme.pump(lambda: len(esme.receipts) >= want, timeout=5 if want else 0.5)
    esme.close()
    return esme


@pytest_twisted.ensureDeferred
async def test_udh_parts_with_esc_pairs_split_across_them_reach_the_provider_as_one_text(gw):
    parts, dc, esm = smpplib.gsm.make_parts(GSM_LONG)
    assert esm == 0x40 and len(parts) > 2 and parts[0].endswith(b"\x1b")  # smpplib split an ESC pair
    esme = await deferToThread(_parts_scenario, smpp_port(gw), parts, 1, dc, esm)
    assert gw.texts == [GSM_LONG]
    ids = [r.message_id.decode() for r in esme.resps]
    assert all(r.status == 0 for r in esme.resps) and len(set(ids)) == len(parts)
    assert sorted(r.receipted_message_id.decode() for r in esme.receipts) == sorted(ids)
    assert {receipt_fields(r)["stat"] for r in esme.receipts} == {"DELIVRD"}


@pytest_twisted.ensureDeferred
async def test_16bit_udh_parts_out_of_order_are_joined(gw):
    raw = b"Out of order, sixteen-bit reference. " * 8
    chunks = [raw[i : i + 100] for i in range(0, len(raw), 100)]
    parts = [make_udh(0x1234, len(chunks), i, sixteen_bit=True) + c for i, c in enumerate(chunks, 1)]
    order = [2, 0, 1] + list(range(3, len(parts)))
    await deferToThread(_parts_scenario, smpp_port(gw), [parts[i] for i in order], 1, 1, 0x40)
    assert gw.texts == [raw.decode()]


@pytest_twisted.ensureDeferred
async def test_sar_parts_with_a_surrogate_pair_split_across_them_are_joined(gw):
    parts, dc, esm = smpplib.gsm.make_parts(EMOJI_LONG, use_udhi=False)
    assert dc == 8 and esm == 0 and len(parts) > 2
    assert any(0xD8 <= p[-2] <= 0xDB for p in parts[:-1])  # a part ends in a high surrogate
    extra = [
        {"sar_msg_ref_num": 77, "sar_total_segments": len(parts), "sar_segment_seqnum": i}
        for i in range(1, len(parts) + 1)
    ]
    esme = await deferToThread(_parts_scenario, smpp_port(gw), parts, 1, dc, 0, extra)
    assert gw.texts == [EMOJI_LONG]
    assert len(esme.receipts) == len(parts)


@pytest_twisted.ensureDeferred
async def test_message_payload_carries_a_long_message_in_one_pdu(gw):
    port = smpp_port(gw)

    def scenario():
        esme = connect(port)
        esme.client.send_message(
            source_addr="TEST",
            destination_addr="380501234567",
            message_payload=GSM_LONG.encode("utf-16-be"),
            data_coding=8,
            registered_delivery=1,
        )
        assert esme.pump(lambda: esme.resps and esme.receipts)
        esme.close()
        return esme

    esme = await deferToThread(scenario)
    assert esme.resps[0].status == 0 and gw.texts == [GSM_LONG]


@pytest_twisted.ensureDeferred
async def test_receipt_only_for_the_part_that_asked_for_one_as_kannel_asks(gw):
    parts, dc, esm = smpplib.gsm.make_parts("Kannel asks for a receipt on part one only. " * 8)
    rds = [1] + [0] * (len(parts) - 1)
    esme = await deferToThread(_parts_scenario, smpp_port(gw), parts, rds, dc, esm, None, 1)
    await deferToThread(time.sleep, 0.3)  # a second receipt would have come by now
    assert len(gw.texts) == 1
    assert [r.receipted_message_id for r in esme.receipts] == [esme.resps[0].message_id]


@pytest_twisted.ensureDeferred
async def test_a_repeated_part_gets_the_id_of_the_first_copy_and_is_sent_once(gw):
    parts, dc, esm = smpplib.gsm.make_parts("Repeated part. " * 20)
    sent = [parts[0], parts[0], *parts[1:]]
    esme = await deferToThread(_parts_scenario, smpp_port(gw), sent, 0, dc, esm, None, 0)
    ids = [r.message_id for r in esme.resps]
    assert ids[0] == ids[1] and len(set(ids)) == len(parts)
    assert gw.texts == ["Repeated part. " * 20]


@pytest_twisted.ensureDeferred
async def test_short_message_of_254_octets_is_one_message(gw):
    text = "x" * 254
    esme = await deferToThread(_parts_scenario, smpp_port(gw), [text.encode()], 1)
    assert esme.resps[0].status == 0 and gw.texts == [text]


@pytest_twisted.ensureDeferred
async def test_binary_data_coding_is_refused_with_rsubmitfail_and_counted(gw):
    esme = await deferToThread(_parts_scenario, smpp_port(gw), [b"\x00\x01\x02"], 1, 4, 0, None, 0)
    assert esme.resps[0].status == Status.ESME_RSUBMITFAIL and gw.texts == []
    assert 'smppgw_bad_pdus_total{reason="binary_data_coding"} 1.0' in gw.metrics.exposition().decode()


@pytest_twisted.ensureDeferred
async def test_query_sm_reports_state_and_final_date_and_unknown_ids_get_rinvmsgid(gw):
    port = smpp_port(gw)

    def scenario():
        esme = connect(port)
        answers = []
        esme.client.set_query_resp_handler(lambda pdu, **kw: answers.append(pdu))
        esme.submit()
        assert esme.pump(lambda: esme.resps and esme.receipts)
        mid = esme.resps[0].message_id.decode()
        esme.client.query_message(message_id=mid, source_addr_ton=5, source_addr_npi=0, source_addr="TEST")
        esme.client.query_message(
            message_id="9999999999", source_addr_ton=5, source_addr_npi=0, source_addr="X"
        )
        assert esme.pump(lambda: len(answers) == 2)
        esme.close()
        return mid, answers[0], answers[1]

    mid, found, unknown = await deferToThread(scenario)
    assert found.message_id.decode() == mid and found.message_state == 2
    assert len(found.final_date) == 16 and found.final_date.endswith(b"+")
    assert (unknown.command, unknown.status) == ("query_sm_resp", Status.ESME_RINVMSGID)


class RawEsme:
    """A minimal blocking client for the PDUs smpplib has no class for (cancel_sm, replace_sm,
    submit_multi) and for data_sm resp TLVs; it speaks through the project's codec."""

    def __init__(self, port: int, system_id: str = "demo", password: str = "demo") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.framer = Framer()
        self.pending: list = []
        self.delivered: list = []
        self.seq = 0
        assert self.call(BindTransceiver(0, system_id=system_id, password=password)).command_status == 0

    def call(self, pdu):
        """Send a request and return its resp; deliver_sm on the way are answered and kept."""
        self.seq += 1
        self.sock.sendall(encode(dataclasses.replace(pdu, sequence_number=self.seq)))
        while True:
            got = self._take(self._next())
            if got is not None and got.is_response and got.sequence_number == self.seq:
                return got

    def wait_delivered(self, count: int, timeout: float = 5.0) -> list:
        end = time.monotonic() + timeout
        while len(self.delivered) < count and time.monotonic() < end:
            self.sock.settimeout(0.2)
            try:
                self._take(self._next())
            except TimeoutError:
                continue
            finally:
                self.sock.settimeout(5)
        return self.delivered

    def _next(self):
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the gateway")
            self.pending.extend(decode(f) for f in self.framer.feed(data))
        return self.pending.pop(0)

    def _take(self, pdu):
        if pdu.command_id == 0x05:  # deliver_sm: answer it and keep it
            self.sock.sendall(encode(DeliverSmResp(pdu.sequence_number)))
            self.delivered.append(pdu)
            return None
        return pdu

    def close(self) -> None:
        self.sock.close()


def submit(dest="380501234567", text=b"hello", **kw) -> SubmitSm:
    kw.setdefault("registered_delivery", 1)
    return SubmitSm(0, source_addr_ton=5, source_addr="TEST", dest_addr_ton=1, dest_addr_npi=1,
                    destination_addr=dest, short_message=text, **kw)  # fmt: skip


TOMORROW = "000001000000000R"


@pytest_twisted.ensureDeferred
async def test_cancel_sm_deletes_a_scheduled_message_and_then_fails(gw):
    port = smpp_port(gw)

    def scenario():
        esme = RawEsme(port)
        mid = esme.call(submit(schedule_delivery_time=TOMORROW)).message_id
        ok = esme.call(CancelSm(0, message_id=mid, source_addr="TEST"))
        again = esme.call(CancelSm(0, message_id=mid, source_addr="TEST"))
        unknown = esme.call(CancelSm(0, message_id="0000009999"))
        receipts = esme.wait_delivered(1)
        esme.close()
        return mid, ok, again, unknown, receipts

    mid, ok, again, unknown, receipts = await deferToThread(scenario)
    assert ok.command_status == 0
    assert again.command_status == Status.ESME_RCANCELFAIL
    assert unknown.command_status == Status.ESME_RINVMSGID
    assert b"stat:DELETED" in receipts[0].short_message and receipts[0].tlv(Tag.MESSAGE_STATE) == b"\x04"
    assert gw.texts == []
    assert gw.gateway.live.get(mid) is None


@pytest_twisted.ensureDeferred
async def test_another_accounts_message_cannot_be_cancelled_or_queried(gw):
    port = smpp_port(gw)

    def scenario():
        owner = RawEsme(port)
        mid = owner.call(submit(schedule_delivery_time=TOMORROW)).message_id
        other = RawEsme(port, "other", "other1")
        refused = other.call(CancelSm(0, message_id=mid))
        owner.close()
        other.close()
        return refused

    assert (await deferToThread(scenario)).command_status == Status.ESME_RINVMSGID


@pytest_twisted.ensureDeferred
async def test_replace_sm_changes_a_scheduled_message_before_it_leaves(gw):
    port = smpp_port(gw)

    def scenario():
        esme = RawEsme(port)
        mid = esme.call(submit(text=b"old text", schedule_delivery_time=TOMORROW)).message_id
        ok = esme.call(
            ReplaceSm(
                0,
                message_id=mid,
                source_addr="TEST",
                short_message=b"new text",
                schedule_delivery_time="000000000000000R",
                registered_delivery=1,
            )  # fmt: skip
        )
        esme.wait_delivered(1)
        late = esme.call(ReplaceSm(0, message_id=mid, short_message=b"too late", registered_delivery=1))
        esme.close()
        return ok, late

    ok, late = await deferToThread(scenario)
    assert ok.command_status == 0 and late.command_status == Status.ESME_RREPLACEFAIL
    assert gw.texts == ["new text"]


@pytest_twisted.ensureDeferred
async def test_submit_multi_answers_per_destination(gw):
    port = smpp_port(gw)

    def scenario():
        esme = RawEsme(port)
        dests = (SmeAddress(1, 1, "380500000001"), SmeAddress(1, 1, "12"), DistributionList("friends"),
                 SmeAddress(1, 1, "380500000002"))  # fmt: skip
        resp = esme.call(
            SubmitMulti(
                0,
                source_addr_ton=5,
                source_addr="TEST",
                dest_addresses=dests,
                registered_delivery=1,
                short_message=b"to many",
            )  # fmt: skip
        )
        receipts = esme.wait_delivered(2)
        esme.close()
        return resp, receipts

    resp, receipts = await deferToThread(scenario)
    assert resp.command_status == 0
    assert [(u.address, u.error_status_code) for u in resp.unsuccess_sme] == [
        ("12", Status.ESME_RINVDSTADR),
        ("friends", Status.ESME_RCNTSUBDL),
    ]
    first = int(resp.message_id)
    got = {r.source_addr: (r.tlv(Tag.RECEIPTED_MESSAGE_ID), receipt_stat(r)) for r in receipts}
    assert got == {
        "380500000001": (b"%010d\0" % first, "DELIVRD"),
        "380500000002": (b"%010d\0" % (first + 1), "UNDELIV"),
    }
    assert sorted(gw.texts) == ["to many", "to many"]


def receipt_stat(pdu) -> str:
    return pdu.short_message.split(b"stat:")[1].split(b" ")[0].decode()


@pytest_twisted.ensureDeferred
async def test_data_sm_is_a_submit_with_its_own_resp_tlvs(gw):
    port = smpp_port(gw)

    def scenario():
        esme = RawEsme(port)
        payload = ((Tag.MESSAGE_PAYLOAD, b"data sm text"),)
        ok = esme.call(DataSm(0, source_addr="TEST", destination_addr="380501234567", registered_delivery=1,
                              tlvs=payload))  # fmt: skip
        bad = esme.call(DataSm(0, source_addr="TEST", destination_addr="12", tlvs=payload))
        receipts = esme.wait_delivered(1)
        esme.close()
        return ok, bad, receipts

    ok, bad, receipts = await deferToThread(scenario)
    assert (
        ok.command_status == 0 and receipts[0].tlv(Tag.RECEIPTED_MESSAGE_ID) == ok.message_id.encode() + b"\0"
    )
    assert bad.command_status == Status.ESME_RINVDSTADR
    assert bad.tlv(Tag.DELIVERY_FAILURE_REASON) == b"\x01"
    assert b"destination" in bad.tlv(Tag.ADDITIONAL_STATUS_INFO_TEXT)
    assert gw.texts == ["data sm text"]


@pytest_twisted.ensureDeferred
async def test_smpp_over_tls_binds_and_submits_on_its_own_port(tmp_path):
    cert, key = _self_signed(tmp_path)
    app = start_app(tmp_path, server={"tls_port": 0, "tls_cert": str(cert), "tls_key": str(key)})
    port = app.tls_port.getHost().port

    def scenario():
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        client = smpplib.client.Client(
            "127.0.0.1", port, timeout=5, allow_unknown_opt_params=True, ssl_context=ctx
        )
        esme = Esme(client)
        client.set_message_received_handler(esme.on_deliver)
        client.set_message_sent_handler(esme.on_sent)
        client.connect()
        client.bind_transceiver(system_id="demo", password="demo")
        version = esme.client._socket.version()
        esme.submit()
        assert esme.pump(lambda: esme.resps and esme.receipts)
        esme.close()
        return version, esme.resps[0].status

    try:
        version, status = await deferToThread(scenario)
    finally:
        await app.stop(grace=1.0)
    assert version in ("TLSv1.2", "TLSv1.3") and status == 0


def test_tls_options_refuse_everything_below_tls_1_2(tmp_path):
    from OpenSSL import SSL

    from smppgw.server.tls import server_options

    cert, key = _self_signed(tmp_path)
    options = server_options(str(cert), str(key)).getContext().set_options(0)  # gives the current mask
    assert options & SSL.OP_NO_SSLv3 and options & SSL.OP_NO_TLSv1 and options & SSL.OP_NO_TLSv1_1


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _aiosmpplib_scenario(port: int, texts: list[str], recorded: list[str]) -> list:
    """aiosmpplib in a thread with an event loop of its own, as an ESME on another host would be."""
    from aiosmpplib import ESME, PhoneNumber
    from aiosmpplib import SubmitSm as AioSubmit
    from aiosmpplib.hook import AbstractHook

    receipts: list = []
    errors: list = []

    class Hook(AbstractHook):
        async def sending(self, smpp_message, pdu, client_id):
            pass

        async def received(self, smpp_message, pdu, client_id):
            if type(smpp_message).__name__ == "DeliverSm" and smpp_message.is_receipt():
                receipts.append(smpp_message)

        async def send_error(self, smpp_message, error, client_id):
            if error is not None:
                errors.append(error)

    async def run() -> None:
        esme = ESME("127.0.0.1", port, "demo", "demo", hook=Hook(), log_level="WARNING")
        for i, text in enumerate(texts):
            message = AioSubmit(
                short_message=text,
                source=PhoneNumber("TEST"),
                destination=PhoneNumber("380501234567"),
                log_id=f"m{i}",
                # The first in message_payload, the second in UDH parts. (aiosmpplib 0.7.4's own SAR
                # split, auto_message_payload=False without UDHI, fails on its side: UnboundLocalError.)
                auto_message_payload=(i == 0),
                esm_class=0 if i == 0 else 0x40,
            )
            await esme.broker.enqueue(message)
        task = asyncio.ensure_future(esme.start())
        end = time.monotonic() + 10
        while (len(recorded) < len(texts) or len(receipts) < len(texts)) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        if task.done():
            task.result()  # aiosmpplib stopped by itself: show why
        await esme.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert not errors, errors
    return receipts


@pytest_twisted.ensureDeferred
async def test_aiosmpplib_long_messages_as_payload_and_as_udh_parts_get_joined_and_receipted(gw):
    texts = ["aiosmpplib payload " * 20, "aiosmpplib segmented into parts " * 20]
    receipts = await deferToThread(_aiosmpplib_scenario, smpp_port(gw), texts, gw.texts)
    assert sorted(gw.texts) == sorted(texts)
    assert len(receipts) >= 2  # at least one for each message


@pytest_twisted.ensureDeferred
async def test_cancel_sm_deletes_a_message_scheduled_at_a_provider_that_can_delete_it(tmp_path):
    from smppgw.fakes.base import FakeClock
    from smppgw.fakes.smsend import FakeSmSend

    fake = FakeSmSend(clock=FakeClock(manual=True), delay=60.0, password="pw-cancel").start()
    provider = {"type": "smsend", "url": fake.url, "username": "user", "password": "pw-cancel"}
    app = start_app(tmp_path, providers={"ss": provider}, routes=[{"providers": ["ss"]}])
    port = smpp_port(app)

    def scenario():
        esme = RawEsme(port)
        mid = esme.call(submit(schedule_delivery_time="371231120000000+")).message_id
        end = time.monotonic() + 5
        while not getattr(app.gateway.live.get(mid), "provider_id", "") and time.monotonic() < end:
            time.sleep(0.02)  # smSend holds it: the order is created at once, with its time
        ok = esme.call(CancelSm(0, message_id=mid, source_addr="TEST"))
        receipts = esme.wait_delivered(1)
        esme.close()
        return ok, receipts

    try:
        ok, receipts = await deferToThread(scenario)
    finally:
        await app.stop(grace=1.0)
        fake.stop()
    assert ok.command_status == 0
    assert len(fake.requests_to("DELETE", r"/sms/.+")) == 1 and not fake.orders
    assert b"stat:DELETED" in receipts[0].short_message
