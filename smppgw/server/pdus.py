"""PDUs the server builds from gateway records, and the metric labels of PDUs."""

from __future__ import annotations

from functools import lru_cache

from smppgw.smpp.constants import ESM_DELIVERY_RECEIPT, CommandId, Status, Tag
from smppgw.smpp.pdu import DeliverSm
from smppgw.store.base import OutboxRecord


def deliver_sm_for(record: OutboxRecord, sequence_number: int, interface_version: int) -> DeliverSm:
    tlvs: tuple[tuple[int, bytes], ...] = ()
    if interface_version >= 0x34 and record.esm_class & ESM_DELIVERY_RECEIPT:
        # receipted_message_id NUL-terminated: smpplib drops the last byte otherwise (smpp34.md §2.2)
        items = [
            (Tag.RECEIPTED_MESSAGE_ID, record.message_id.encode() + b"\0"),
            (Tag.MESSAGE_STATE, bytes((record.state,))),
        ]
        if record.network_error is not None:
            items.append((Tag.NETWORK_ERROR_CODE, b"\x03" + record.network_error.to_bytes(2, "big")))
        if record.user_message_reference is not None:
            items.append((Tag.USER_MESSAGE_REFERENCE, record.user_message_reference.to_bytes(2, "big")))
        tlvs = tuple(items)
    return DeliverSm(
        sequence_number=sequence_number,
        source_addr_ton=record.source_ton,
        source_addr_npi=record.source_npi,
        source_addr=record.source_addr,
        dest_addr_ton=record.dest_ton,
        dest_addr_npi=record.dest_npi,
        destination_addr=record.dest_addr,
        esm_class=record.esm_class,
        data_coding=record.data_coding,
        short_message=record.short_message,
        tlvs=tlvs,
    )


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
