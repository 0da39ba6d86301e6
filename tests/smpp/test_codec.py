"""Specific wire cases: the status each malformed PDU is refused with (smpp34.md §1.2-§1.3),
what error_response answers, header-only error resps, and interop with smpplib's encoder."""

from __future__ import annotations

import dataclasses
import struct
from types import SimpleNamespace

import pytest
import smpplib.smpp

from smppgw.smpp import _wire
from smppgw.smpp import pdu as p
from smppgw.smpp.codec import PduError, decode, encode, error_response
from smppgw.smpp.constants import CommandId, Status, Tag


def frame(command_id: int, body: bytes = b"", *, seq: int = 42, status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def c(text: str) -> bytes:
    return text.encode("latin-1") + b"\0"


def submit_body(
    *,
    service_type: bytes = c(""),
    source: bytes = c("123"),
    dest: bytes = c("456"),
    schedule: bytes = c(""),
    validity: bytes = c(""),
    sm_length: int | None = None,
    sm: bytes = b"hello",
    tail: bytes = b"",
) -> bytes:
    length = len(sm) if sm_length is None else sm_length
    return (
        service_type + b"\x01\x01" + source + b"\x01\x01" + dest + b"\x00\x00\x00"
        + schedule + validity + b"\x01\x00\x00\x00" + bytes([length]) + sm + tail
    )  # fmt: skip


def bind_body(system_id: str = "esme", password: str = "pw", system_type: str = "", rng: str = "") -> bytes:
    return c(system_id) + c(password) + c(system_type) + b"\x34\x00\x00" + c(rng)


def refusal(data: bytes) -> PduError:
    with pytest.raises(PduError) as info:
        decode(data)
    return info.value


def test_submit_sm_from_raw_bytes_decodes_every_field() -> None:
    pdu = decode(frame(CommandId.SUBMIT_SM, submit_body(tail=b"\x14\x03\x00\x01X")))
    assert pdu == p.SubmitSm(
        42,
        0,
        "",
        1,
        1,
        "123",
        1,
        1,
        "456",
        registered_delivery=1,
        short_message=b"hello",
        tlvs=((0x1403, b"X"),),
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (submit_body(source=b"1" * 21), Status.ESME_RINVSRCADR),
        (submit_body(dest=b"1" * 21), Status.ESME_RINVDSTADR),
        (submit_body(service_type=b"CMTabc"), Status.ESME_RINVSERTYP),
        (submit_body(schedule=c("2501011200")), Status.ESME_RINVSCHED),
        (submit_body(schedule=b"1" * 17), Status.ESME_RINVSCHED),
        (submit_body(validity=c("0000010000000R0")), Status.ESME_RINVEXPIRY),
        (submit_body(sm_length=255, sm=b"x" * 255), Status.ESME_RINVMSGLEN),
        (submit_body(sm_length=10, sm=b"short"), Status.ESME_RINVMSGLEN),
    ],
    ids=[
        "source",
        "destination",
        "service_type",
        "schedule_len",
        "schedule_no_nul",
        "validity",
        "sm_length_255",
        "sm_length_beyond_body",
    ],
)
def test_malformed_submit_sm_is_refused_with_the_fields_own_status(body: bytes, status: int) -> None:
    err = refusal(frame(CommandId.SUBMIT_SM, body, seq=9))
    assert (err.command_status, err.command_id, err.sequence_number) == (status, CommandId.SUBMIT_SM, 9)
    assert error_response(err) == p.SubmitSmResp(9, status)
    assert encode(error_response(err)) == frame(CommandId.SUBMIT_SM_RESP, seq=9, status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (bind_body(system_id="x" * 16), Status.ESME_RINVSYSID),
        (bind_body(password="x" * 9), Status.ESME_RINVPASWD),
        (bind_body(system_type="x" * 13), Status.ESME_RINVSYSTYP),
        (bind_body(rng="x" * 41), Status.ESME_RINVPARLEN),
        (c("esme") + c("pw"), Status.ESME_RINVPARLEN),
        (b"", Status.ESME_RINVPARLEN),
    ],
    ids=["system_id", "password", "system_type", "address_range", "truncated", "empty"],
)
def test_malformed_bind_gets_its_bind_resp_with_the_status(body: bytes, status: int) -> None:
    err = refusal(frame(CommandId.BIND_TRANSCEIVER, body))
    assert err.command_status == status
    assert error_response(err) == p.BindTransceiverResp(42, status)


def test_longest_allowed_fields_are_accepted() -> None:
    pdu = decode(frame(CommandId.BIND_TRANSMITTER, bind_body("x" * 15, "y" * 8, "z" * 12, "r" * 40)))
    assert isinstance(pdu, p.BindTransmitter)
    assert (pdu.system_id, pdu.password, pdu.system_type, pdu.address_range) == (
        "x" * 15,
        "y" * 8,
        "z" * 12,
        "r" * 40,
    )
    sm = decode(frame(CommandId.SUBMIT_SM, submit_body(source=c("1" * 20), sm=b"x" * 254)))
    assert isinstance(sm, p.SubmitSm) and sm.source_addr == "1" * 20 and len(sm.short_message) == 254


def test_data_sm_allows_65_octet_addresses_and_refuses_longer() -> None:
    ok = p.DataSm(1, source_addr="1" * 64, destination_addr="2" * 64)
    assert decode(encode(ok)) == ok
    body = c("") + b"\x01\x01" + b"1" * 65 + b"\x01\x01" + c("2") + b"\x00\x00\x00"
    assert refusal(frame(CommandId.DATA_SM, body)).command_status == Status.ESME_RINVSRCADR


def test_message_id_longer_than_64_in_query_sm_is_rinvparlen() -> None:
    err = refusal(frame(CommandId.QUERY_SM, b"9" * 65 + b"\0\x01\x01" + c("123")))
    assert err.command_status == Status.ESME_RINVPARLEN
    assert error_response(err) == p.QuerySmResp(42, Status.ESME_RINVPARLEN)


def test_short_message_and_message_payload_together_is_rinvmsglen() -> None:
    tail = struct.pack(">HH", Tag.MESSAGE_PAYLOAD, 3) + b"abc"
    assert (
        refusal(frame(CommandId.SUBMIT_SM, submit_body(tail=tail))).command_status == Status.ESME_RINVMSGLEN
    )
    assert (
        refusal(frame(CommandId.DELIVER_SM, submit_body(tail=tail))).command_status == Status.ESME_RINVMSGLEN
    )
    only_payload = decode(frame(CommandId.SUBMIT_SM, submit_body(sm=b"", tail=tail)))
    assert only_payload.tlv(Tag.MESSAGE_PAYLOAD) == b"abc"


def test_known_tlv_with_wrong_length_is_rinvparlen() -> None:
    tail = struct.pack(">HH", Tag.SAR_MSG_REF_NUM, 1) + b"\x05"
    assert (
        refusal(frame(CommandId.SUBMIT_SM, submit_body(tail=tail))).command_status == Status.ESME_RINVPARLEN
    )


def test_unknown_and_vendor_tlvs_are_kept_in_order() -> None:
    tail = (
        struct.pack(">HH", 0x1403, 2)
        + b"ab"
        + struct.pack(">HH", 0x7777, 0)
        + struct.pack(">HH", 0x1403, 1)
        + b"c"
    )
    pdu = decode(frame(CommandId.SUBMIT_SM, submit_body(tail=tail)))
    assert pdu.tlvs == ((0x1403, b"ab"), (0x7777, b""), (0x1403, b"c"))  # type: ignore[attr-defined]
    assert pdu.tlv(0x1403) == b"ab"
    assert p.tlv_int(pdu, 0x7777) == 0 and p.tlv_int(pdu, 0x1) is None


@pytest.mark.parametrize("stray", [b"\x02", b"\x02\x04", b"\x02\x04\x00"])
def test_one_to_three_stray_octets_after_the_tlvs_are_rinvoptparstream(stray: bytes) -> None:
    err = refusal(frame(CommandId.SUBMIT_SM, submit_body(tail=stray)))
    assert err.command_status == Status.ESME_RINVOPTPARSTREAM


def test_tlv_overrunning_the_pdu_is_rinvoptparstream() -> None:
    tail = struct.pack(">HH", 0x1403, 10) + b"abc"
    assert refusal(frame(CommandId.SUBMIT_SM, submit_body(tail=tail))).command_status == 0xC0


def test_sm_length_shorter_than_the_rest_parses_the_rest_as_tlvs() -> None:
    # smpp34.md §1.11: the extra octets are read as TLVs; "lo" is no TLV stream.
    err = refusal(frame(CommandId.SUBMIT_SM, submit_body(sm_length=3, sm=b"hello")))
    assert err.command_status == Status.ESME_RINVOPTPARSTREAM


def test_submit_multi_refusals() -> None:
    head = c("") + b"\x01\x01" + c("123")
    tail = b"\x00\x00\x00" + c("") + c("") + b"\x00\x00\x00\x00" + b"\x02hi"
    ok = decode(
        frame(
            CommandId.SUBMIT_MULTI, head + b"\x02" + b"\x01\x01\x01" + c("456") + b"\x02" + c("list") + tail
        )
    )
    assert ok.dest_addresses == (p.SmeAddress(1, 1, "456"), p.DistributionList("list"))  # type: ignore[attr-defined]
    cases = {
        b"\x01\x03" + c("456"): Status.ESME_RINVDESTFLAG,
        b"\x01\x02" + b"l" * 21: Status.ESME_RINVDLNAME,
        b"\x01\x01\x01\x01" + b"4" * 21: Status.ESME_RINVDSTADR,
        b"\xff": Status.ESME_RINVNUMDESTS,
    }
    for dests, status in cases.items():
        err = refusal(frame(CommandId.SUBMIT_MULTI, head + dests + tail))
        assert err.command_status == status
        assert error_response(err) == p.SubmitMultiResp(42, status)


def test_unknown_command_id_is_rinvcmdid_answered_by_generic_nack() -> None:
    err = refusal(frame(0x00000099, b"junk", seq=77))
    assert (err.command_status, err.command_id, err.sequence_number) == (Status.ESME_RINVCMDID, 0x99, 77)
    assert error_response(err) == p.GenericNack(77, Status.ESME_RINVCMDID)


def test_command_length_disagreeing_with_the_frame_is_rinvcmdlen_generic_nack() -> None:
    data = frame(CommandId.ENQUIRE_LINK, seq=5) + b"\0"
    err = refusal(data)
    assert err.command_status == Status.ESME_RINVCMDLEN
    assert error_response(err) == p.GenericNack(5, Status.ESME_RINVCMDLEN)
    short = refusal(b"\x00\x00\x00\x08\x00\x00")
    assert error_response(short) == p.GenericNack(0, Status.ESME_RINVCMDLEN)


def test_failed_responses_and_alert_notification_get_no_answer() -> None:
    assert (
        error_response(PduError(0xC2, "x", command_id=CommandId.DELIVER_SM_RESP, sequence_number=1)) is None
    )
    assert error_response(PduError(3, "x", command_id=0x80000099, sequence_number=1)) is None
    alert = refusal(frame(CommandId.ALERT_NOTIFICATION, b"\x01"))
    assert error_response(alert) is None


def test_outbind_from_an_esme_decodes_and_a_broken_one_gets_generic_nack() -> None:
    assert decode(frame(CommandId.OUTBIND, c("smsc") + c("pw"))) == p.Outbind(42, 0, "smsc", "pw")
    err = refusal(frame(CommandId.OUTBIND, b"x" * 20))
    assert error_response(err) == p.GenericNack(42, Status.ESME_RINVSYSID)


def test_error_resps_are_written_header_only() -> None:
    cases = [
        p.BindTransceiverResp(
            3, Status.ESME_RBINDFAIL, system_id="smsc", tlvs=((Tag.SC_INTERFACE_VERSION, b"4"),)
        ),
        p.BindReceiverResp(3, Status.ESME_RINVPASWD, system_id="smsc"),
        p.BindTransmitterResp(3, Status.ESME_RINVSYSID),
        p.SubmitSmResp(3, Status.ESME_RTHROTTLED, message_id="0000000001"),
        p.DeliverSmResp(3, Status.ESME_RX_T_APPN),
        p.SubmitMultiResp(3, Status.ESME_RSUBMITFAIL, message_id="1"),
        p.QuerySmResp(3, Status.ESME_RQUERYFAIL, message_id="1"),
        p.DataSmResp(3, Status.ESME_RDELIVERYFAILURE),
    ]
    for pdu in cases:
        assert encode(pdu) == frame(pdu.command_id, seq=3, status=pdu.command_status), pdu


def test_data_sm_resp_on_error_keeps_its_delivery_failure_reason() -> None:
    resp = p.DataSmResp(3, Status.ESME_RDELIVERYFAILURE, tlvs=((Tag.DELIVERY_FAILURE_REASON, b"\x01"),))
    assert len(encode(resp)) > 16
    assert decode(encode(resp)) == resp


def test_ok_resp_without_body_and_error_resp_with_junk_body_decode() -> None:
    # Many ESMEs send deliver_sm_resp with no message_id octet at all.
    assert decode(frame(CommandId.DELIVER_SM_RESP, seq=8)) == p.DeliverSmResp(8)
    assert decode(frame(CommandId.SUBMIT_SM_RESP, b"x" * 80, seq=8, status=0x58)) == p.SubmitSmResp(8, 0x58)


def test_trailing_octets_on_a_pdu_without_tlvs_are_ignored() -> None:
    assert decode(frame(CommandId.ENQUIRE_LINK, b"\0\0\0")) == p.EnquireLink(42)
    assert decode(frame(CommandId.DELIVER_SM_RESP, c("") + b"\x00\x1d\x00\x01x")) == p.DeliverSmResp(42)


def test_submit_sm_resp_body_is_only_the_message_id() -> None:
    assert encode(p.SubmitSmResp(1, message_id="0000000001")) == frame(
        CommandId.SUBMIT_SM_RESP, c("0000000001"), seq=1
    )


def test_bind_resp_carries_sc_interface_version() -> None:
    resp = p.BindTransceiverResp(2, system_id="smppgw", tlvs=((Tag.SC_INTERFACE_VERSION, b"\x34"),))
    wire = encode(resp)
    assert wire.endswith(c("smppgw") + b"\x02\x10\x00\x01\x34")
    assert decode(wire) == resp


@pytest.mark.parametrize(
    "pdu",
    [
        p.SubmitSm(1, source_addr="1" * 21),
        p.DeliverSm(1, destination_addr="a\0b"),
        p.BindTransmitter(1, password="123456789"),
        p.SubmitSm(1, short_message=b"x" * 255),
        p.DeliverSm(1, short_message=b"x", tlvs=((Tag.MESSAGE_PAYLOAD, b"y"),)),
        p.DeliverSm(1, tlvs=((Tag.MESSAGE_STATE, b"\x00\x02"),)),
        p.SubmitSm(1, schedule_delivery_time="2501011200"),
        p.EnquireLink(2**32),
        p.SubmitSm(1, esm_class=256),
        p.QuerySm(1, source_addr="€"),
        p.SubmitMulti(1, dest_addresses=(p.SmeAddress(1, 1, "1"),) * 255),
    ],
)
def test_encode_refuses_what_decode_would_reject(pdu: p.Pdu) -> None:
    with pytest.raises(ValueError):
        encode(pdu)


def test_latin1_strings_round_trip_every_byte() -> None:
    pdu = p.SubmitSm(1, source_addr="\xff\x01é", short_message=bytes(range(254)))
    assert decode(encode(pdu)) == pdu


def test_layouts_name_every_dataclass_field_in_order() -> None:
    for cls, layout in _wire.LAYOUTS.items():
        names = [f.name for f in dataclasses.fields(cls)][2:]
        if names and names[-1] == "tlvs":
            names.pop()
        assert [f.name for f in layout] == names, cls.__name__
    assert set(_wire.LAYOUTS) == set(p.PDU_CLASSES.values())


# -- interop with smpplib 2.2.4, the client the end-to-end tests use ------------------------------

_CLIENT = SimpleNamespace(next_sequence=lambda: 1, sequence=1)


def test_submit_sm_encoded_by_smpplib_decodes() -> None:
    sent = smpplib.smpp.make_pdu(
        "submit_sm", client=_CLIENT, source_addr="123", destination_addr="456", short_message=b"hi",
        registered_delivery=1, data_coding=8, sar_msg_ref_num=5, sar_total_segments=2, sar_segment_seqnum=1,
    )  # fmt: skip
    pdu = decode(sent.generate())
    assert isinstance(pdu, p.SubmitSm)
    assert (pdu.source_addr, pdu.destination_addr, pdu.short_message) == ("123", "456", b"hi")
    assert (pdu.registered_delivery, pdu.data_coding) == (1, 8)
    assert pdu.tlvs == ((Tag.SAR_MSG_REF_NUM, b"\x00\x05"), (Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
                        (Tag.SAR_SEGMENT_SEQNUM, b"\x01"))  # fmt: skip


def test_receipt_deliver_sm_encoded_here_parses_in_smpplib() -> None:
    receipt = p.DeliverSm(
        9, source_addr="456", destination_addr="123", esm_class=0x04, short_message=b"id:ABC123 stat:DELIVRD",
        tlvs=(p.cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "ABC123"), p.int_tlv(Tag.MESSAGE_STATE, 2, 1),
              (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x01")),
    )  # fmt: skip
    got = smpplib.smpp.parse_pdu(encode(receipt), client=_CLIENT, allow_unknown_opt_params=True)
    assert (got.sequence, got.esm_class, got.source_addr) == (9, 4, b"456")
    assert got.receipted_message_id == b"ABC123"
    assert got.message_state == 2
    assert got.network_error_code == b"\x03\x00\x01"


@pytest.mark.parametrize("cls", [p.SubmitSm, p.DeliverSm])
def test_decoded_short_message_pdus_are_the_same_frozen_slotted_values(cls: type[p.Pdu]) -> None:
    built = cls(7, 0, "CMT", 5, 0, "BANK", 1, 1, "380501234567", 0, 0, 0, "", "", 1, 0, 8, 0, b"\x04\x3f", ())
    decoded = decode(encode(built))
    assert type(decoded) is cls and decoded == built and hash(decoded) == hash(built)
    assert not hasattr(decoded, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.source_addr = "OTHER"  # type: ignore[misc]
