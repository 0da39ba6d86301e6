"""PDUs the server builds from gateway records and answers, and the metric labels of PDUs.

A deliver_sm longer than one SMS (an MO message) goes out as the account asks (smpp34.md
§1.8): UDH parts with an 8-bit reference, sar_* parts, or one PDU with message_payload. A
3.3 bind has no TLVs, so it always gets UDH parts. Receipts always fit in one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache

from smppgw.smpp.codec import encode_deliver_sm, receipt_tlvs
from smppgw.smpp.concat import make_udh, sar_tlvs, sms_capacity, split_user_data
from smppgw.smpp.constants import ESM_DELIVERY_RECEIPT, ESM_UDHI, CommandId, MessageState, Status, Tag
from smppgw.smpp.pdu import DataSmResp, DeliverSm, Pdu, cstr_tlv, int_tlv, response_for
from smppgw.store.base import OutboxRecord

_UDH8_LENGTH = 6


def deliver_sm_for(
    record: OutboxRecord, sequence_number: int, interface_version: int, enroute_esm_class: int = 0x04
) -> DeliverSm:
    return DeliverSm(
        sequence_number=sequence_number,
        source_addr_ton=record.source_ton,
        source_addr_npi=record.source_npi,
        source_addr=record.source_addr,
        dest_addr_ton=record.dest_ton,
        dest_addr_npi=record.dest_npi,
        destination_addr=record.dest_addr,
        esm_class=_esm_class(record, enroute_esm_class),
        data_coding=record.data_coding,
        short_message=record.short_message,
        tlvs=_receipt_tlvs(record, interface_version),
    )


def deliver_sm_bytes(
    record: OutboxRecord, sequence_number: int, interface_version: int, enroute_esm_class: int = 0x04
) -> bytes:
    """`encode(deliver_sm_for(...))` without the PDU object: the one deliver_sm of a record that
    fits one (`fits_one`), as a receipt always does."""
    return encode_deliver_sm(
        sequence_number,
        record.source_ton,
        record.source_npi,
        record.source_addr,
        record.dest_ton,
        record.dest_npi,
        record.dest_addr,
        _esm_class(record, enroute_esm_class),
        record.data_coding,
        record.short_message,
        receipt_tlvs(record.message_id, record.state, record.network_error, record.user_message_reference)
        if interface_version >= 0x34 and record.esm_class & ESM_DELIVERY_RECEIPT
        else b"",
    )


def fits_one(record: OutboxRecord) -> bool:
    """Whether the record goes out as one deliver_sm (a receipt, or a short MO message)."""
    if record.esm_class & (ESM_DELIVERY_RECEIPT | ESM_UDHI):
        return True
    return len(record.short_message) <= sms_capacity(record.data_coding)


def _receipt_tlvs(record: OutboxRecord, interface_version: int) -> tuple[tuple[int, bytes], ...]:
    if interface_version < 0x34 or not record.esm_class & ESM_DELIVERY_RECEIPT:
        return ()
    # receipted_message_id NUL-terminated: smpplib drops the last byte otherwise (smpp34.md §2.2)
    tlvs = (
        (_RECEIPTED_MESSAGE_ID, record.message_id.encode() + b"\0"),
        (_MESSAGE_STATE, bytes((record.state,))),
    )
    if record.network_error is not None:
        tlvs += ((_NETWORK_ERROR_CODE, b"\x03" + record.network_error.to_bytes(2, "big")),)
    if record.user_message_reference is not None:
        tlvs += ((_USER_MESSAGE_REFERENCE, record.user_message_reference.to_bytes(2, "big")),)
    return tlvs


def _esm_class(record: OutboxRecord, enroute_esm_class: int) -> int:
    if record.esm_class == ESM_DELIVERY_RECEIPT and record.state == _ENROUTE:
        return enroute_esm_class  # 0x20 (intermediate notification) only where asked
    return record.esm_class


# plain ints for the per-receipt path (an IntEnum costs more in every compare and hash)
_RECEIPTED_MESSAGE_ID = int(Tag.RECEIPTED_MESSAGE_ID)
_MESSAGE_STATE = int(Tag.MESSAGE_STATE)
_NETWORK_ERROR_CODE = int(Tag.NETWORK_ERROR_CODE)
_USER_MESSAGE_REFERENCE = int(Tag.USER_MESSAGE_REFERENCE)
_ENROUTE = int(MessageState.ENROUTE)


def deliver_sms_for(
    record: OutboxRecord,
    next_sequence: Callable[[], int],
    interface_version: int,
    mode: str,
    ref: int,
    enroute_esm_class: int = 0x04,
) -> list[DeliverSm]:
    """The deliver_sm PDUs that carry `record`: one, or the parts of a long message.

    `mode` is the account's long_mo ("udh", "sar" or "payload"); `ref` the reference for parts
    (its low 8 bits for UDH)."""
    data, dc = record.short_message, record.data_coding
    if fits_one(record):
        return [deliver_sm_for(record, next_sequence(), interface_version, enroute_esm_class)]
    if interface_version < 0x34:
        mode = "udh"
    base = deliver_sm_for(record, 0, interface_version, enroute_esm_class)
    if mode == "payload":
        return [_with(base, next_sequence(), b"", base.esm_class, ((Tag.MESSAGE_PAYLOAD, data),))]
    chunks = split_user_data(data, dc, sms_capacity(dc, _UDH8_LENGTH))
    total = len(chunks)
    if total > 255:
        # Beyond what concatenation can number: one message_payload where the bind has TLVs.
        if interface_version >= 0x34:
            return [_with(base, next_sequence(), b"", base.esm_class, ((Tag.MESSAGE_PAYLOAD, data),))]
        chunks, total = chunks[:255], 255
    if mode == "sar":
        return [
            _with(base, next_sequence(), chunk, base.esm_class, sar_tlvs(ref & 0xFFFF, total, i))
            for i, chunk in enumerate(chunks, 1)
        ]
    return [
        _with(base, next_sequence(), make_udh(ref & 0xFF, total, i) + chunk, base.esm_class | ESM_UDHI, ())
        for i, chunk in enumerate(chunks, 1)
    ]


def _with(
    base: DeliverSm, seq: int, sm: bytes, esm_class: int, tlvs: tuple[tuple[int, bytes], ...]
) -> DeliverSm:
    return dataclasses.replace(
        base, sequence_number=seq, short_message=sm, esm_class=esm_class, tlvs=base.tlvs + tlvs
    )


# delivery_failure_reason (§5.3.2.33) for a data_sm refused with these statuses; others: permanent.
_INVALID_DESTINATION = frozenset({Status.ESME_RINVDSTADR, Status.ESME_RINVDSTTON, Status.ESME_RINVDSTNPI})
_TEMPORARY = frozenset({Status.ESME_RSYSERR, Status.ESME_RMSGQFUL, Status.ESME_RTHROTTLED})


def data_sm_resp(pdu: Pdu, status: int, detail: str, interface_version: int) -> DataSmResp:
    """data_sm_resp: the message_id, or on a refusal (3.4 binds) delivery_failure_reason and
    additional_status_info_text saying why."""
    if status == 0:
        return DataSmResp(pdu.sequence_number, 0, message_id=detail)
    if interface_version < 0x34:
        return DataSmResp(pdu.sequence_number, status)
    reason = 1 if status in _INVALID_DESTINATION else 3 if status in _TEMPORARY else 2
    tlvs = [int_tlv(Tag.DELIVERY_FAILURE_REASON, reason, 1)]
    if detail:
        tlvs.append(
            cstr_tlv(Tag.ADDITIONAL_STATUS_INFO_TEXT, detail.encode("ascii", "replace")[:255].decode())
        )
    return DataSmResp(pdu.sequence_number, status, tlvs=tuple(tlvs))


def resp_with(pdu: Pdu, status: int, fields: dict[str, object]) -> Pdu | None:
    """The resp to `pdu`: with `fields` on success, header only on an error (§4.1.2)."""
    return response_for(pdu, status, **fields) if status == 0 else response_for(pdu, status)


@lru_cache(maxsize=1024)
def label_of(command_id: int, status: int) -> tuple[str, str]:
    """(command, status) metric labels; unknown ids and codes stay bounded as 'unknown' / hex."""
    try:
        command = CommandId(command_id).name.lower()
    except ValueError:
        command = "unknown"
    try:
        name = Status(status).name
    except ValueError:
        name = f"0x{status:08x}" if 0x400 <= status <= 0x4FF else "unknown"
    return command, name
