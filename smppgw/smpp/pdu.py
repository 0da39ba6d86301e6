"""The SMPP 3.4 PDUs as immutable values, and which response answers which request.

Each PDU type is a frozen, slotted dataclass whose fields are the spec's mandatory parameters,
in wire order, after the two header fields every PDU has (sequence_number, command_status).
command_length and sm_length are implicit; command_id is a ClassVar. C-Octet-Strings are `str`
holding the latin-1 decoding of their bytes (so any byte round-trips), short_message is `bytes`,
and TLVs are kept as `(tag, raw value)` pairs in wire order, unknown tags included.

Wire encoding lives in codec.py; this module knows nothing about bytes on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .constants import RESP, CommandId, Status

Tlvs = tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class Pdu:
    """Base of every PDU class."""

    command_id: ClassVar[int]
    sequence_number: int
    command_status: int = 0

    def tlv(self, tag: int) -> bytes | None:
        """The value of the first TLV with this tag, or None (also on PDUs that carry no TLVs)."""
        tlvs: Tlvs = getattr(self, "tlvs", ())
        for t, value in tlvs:
            if t == tag:
                return value
        return None

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESP)


def tlv_int(pdu: Pdu, tag: int) -> int | None:
    """The first TLV with this tag read as a big-endian unsigned integer, or None."""
    value = pdu.tlv(tag)
    return None if value is None else int.from_bytes(value, "big")


def tlv_str(pdu: Pdu, tag: int) -> str | None:
    """The first TLV with this tag read as a C-Octet-String (NUL and anything after it dropped)."""
    value = pdu.tlv(tag)
    return None if value is None else value.split(b"\0", 1)[0].decode("latin-1")


def int_tlv(tag: int, value: int, size: int) -> tuple[int, bytes]:
    """A TLV pair holding `value` as a `size`-octet big-endian integer."""
    return (tag, value.to_bytes(size, "big"))


def cstr_tlv(tag: int, value: str) -> tuple[int, bytes]:
    """A TLV pair holding `value` NUL-terminated (smpplib drops the last byte otherwise)."""
    return (tag, value.encode("latin-1") + b"\0")


# -- header-only PDUs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND


@dataclass(frozen=True, slots=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(frozen=True, slots=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


# -- binds ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bind(Pdu):
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindReceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True)
class _BindResp(Pdu):
    system_id: str = ""
    tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    system_id: str = ""
    password: str = ""


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ShortMessagePdu(Pdu):
    """The body shared by submit_sm and deliver_sm (§4.4.1, §4.6.1)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True)
class SubmitSm(_ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True)
class DeliverSm(_ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True)
class _MessageIdResp(Pdu):
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, slots=True)
class SmeAddress:
    """A submit_multi destination with dest_flag 1 (an SME address)."""

    ton: int
    npi: int
    address: str


@dataclass(frozen=True, slots=True)
class DistributionList:
    """A submit_multi destination with dest_flag 2 (a distribution list name)."""

    name: str


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """One destination a submit_multi could not reach, with its command_status."""

    ton: int
    npi: int
    address: str
    error_status_code: int


@dataclass(frozen=True, slots=True)
class SubmitMulti(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addresses: tuple[SmeAddress | DistributionList, ...] = ()
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True)
class SubmitMultiResp(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = ""
    unsuccess_sme: tuple[UnsuccessSme, ...] = ()


@dataclass(frozen=True, slots=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True)
class DataSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP
    message_id: str = ""
    tlvs: Tlvs = ()


# -- query / cancel / replace / alert ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class CancelSm(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""
    tlvs: Tlvs = ()


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindReceiver,
        BindReceiverResp,
        BindTransmitter,
        BindTransmitterResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        SubmitSm,
        SubmitSmResp,
        SubmitMulti,
        SubmitMultiResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        EnquireLink,
        EnquireLinkResp,
        AlertNotification,
    )
}

# Every request with a response of its own. outbind and alert_notification have none.
RESPONSE_CLASS: dict[int, type[Pdu]] = {
    cid: PDU_CLASSES[cid | RESP] for cid in PDU_CLASSES if not cid & RESP and cid | RESP in PDU_CLASSES
}


def response_for(pdu: Pdu, status: int = 0, **fields: object) -> Pdu | None:
    """The response to `pdu`: its own response class with the same sequence_number.

    A request without a response class of its own (outbind) gets a generic_nack, with
    ESME_RINVCMDID if no status is given. Responses (generic_nack included) and
    alert_notification are never answered (smpp34.md §1.11: a response nobody asked for gets
    no answer; answering a generic_nack with one could ping-pong forever), so this gives None.
    """
    cls = RESPONSE_CLASS.get(pdu.command_id)
    if cls is not None:
        return cls(pdu.sequence_number, status, **fields)
    if pdu.command_id & RESP or pdu.command_id == CommandId.ALERT_NOTIFICATION:
        return None
    return GenericNack(pdu.sequence_number, status or Status.ESME_RINVCMDID)
