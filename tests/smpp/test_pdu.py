"""PDU values: immutability, TLV accessors and which response answers which request."""

from __future__ import annotations

import dataclasses

import pytest

from smppgw.smpp import pdu as p
from smppgw.smpp.constants import RESP, CommandId, Status, Tag


def test_pdus_are_frozen_slotted_values() -> None:
    a = p.SubmitSm(1, source_addr="123", short_message=b"hi")
    assert a == p.SubmitSm(1, source_addr="123", short_message=b"hi")
    assert hash(a) == hash(p.SubmitSm(1, source_addr="123", short_message=b"hi"))
    assert a != p.DeliverSm(1, source_addr="123", short_message=b"hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.source_addr = "456"  # type: ignore[misc]
    assert not hasattr(a, "__dict__")


def test_every_pdu_class_starts_with_the_header_fields_and_ends_with_tlvs_if_any() -> None:
    for cid, cls in p.PDU_CLASSES.items():
        assert cls.command_id == cid
        names = [f.name for f in dataclasses.fields(cls)]
        assert names[:2] == ["sequence_number", "command_status"]
        assert "tlvs" not in names or names[-1] == "tlvs"


def test_tlv_returns_the_first_value_with_the_tag() -> None:
    d = p.DeliverSm(1, tlvs=((Tag.MESSAGE_STATE, b"\x02"), (0x1400, b"a"), (0x1400, b"b")))
    assert d.tlv(0x1400) == b"a"
    assert d.tlv(Tag.RECEIPTED_MESSAGE_ID) is None
    assert p.tlv_int(d, Tag.MESSAGE_STATE) == 2
    assert p.EnquireLink(1).tlv(Tag.MESSAGE_STATE) is None


def test_tlv_helpers_build_nul_terminated_strings_and_big_endian_ints() -> None:
    assert p.cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "ABC123") == (Tag.RECEIPTED_MESSAGE_ID, b"ABC123\0")
    assert p.int_tlv(Tag.USER_MESSAGE_REFERENCE, 258, 2) == (Tag.USER_MESSAGE_REFERENCE, b"\x01\x02")
    d = p.DeliverSm(1, tlvs=(p.cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "ABC123"),))
    assert p.tlv_str(d, Tag.RECEIPTED_MESSAGE_ID) == "ABC123"


def test_response_for_a_request_is_its_resp_with_the_same_sequence_number() -> None:
    resp = p.response_for(p.SubmitSm(17), message_id="0000000001")
    assert resp == p.SubmitSmResp(17, 0, "0000000001")
    assert p.response_for(p.BindTransceiver(3), Status.ESME_RINVPASWD) == p.BindTransceiverResp(3, 0x0E)
    assert p.response_for(p.EnquireLink(9)) == p.EnquireLinkResp(9)


def test_every_request_but_outbind_and_alert_notification_has_a_resp_class() -> None:
    requests = {c for c in CommandId if not c & RESP}
    assert set(p.RESPONSE_CLASS) == requests - {CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION}
    for cid, cls in p.RESPONSE_CLASS.items():
        assert cls.command_id == cid | RESP


def test_outbind_is_answered_with_generic_nack() -> None:
    assert p.response_for(p.Outbind(4)) == p.GenericNack(4, Status.ESME_RINVCMDID)
    assert p.response_for(p.Outbind(4), Status.ESME_RSYSERR) == p.GenericNack(4, Status.ESME_RSYSERR)


def test_responses_and_alert_notification_are_never_answered() -> None:
    assert p.response_for(p.AlertNotification(1)) is None
    assert p.response_for(p.GenericNack(1, 3)) is None
    assert p.response_for(p.DeliverSmResp(1)) is None
    assert p.DeliverSmResp(1).is_response and not p.DeliverSm(1).is_response
