"""Checks and decoding of one submit_sm before it is stored: the refusal status for each bad
field (smpp34.md §1.3), the text decoded from its data_coding, and the time fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from smppgw.smpp.constants import ESM_UDHI, Status, Tag
from smppgw.smpp.pdu import SubmitSm
from smppgw.smpp.text import TextError, decode_text
from smppgw.smpp.timefmt import parse_smpp_time


class Refused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True, slots=True)
class Prepared:
    destination: str
    text: str
    user_message_reference: int | None
    schedule_at: float | None
    valid_until: float | None


def prepare(
    pdu: SubmitSm, interface_version: int, now: float, dc0: str = "gsm", dc1: str = "ascii"
) -> Prepared:
    dest = pdu.destination_addr[1:] if pdu.destination_addr.startswith("+") else pdu.destination_addr
    if not dest.isdigit() or not 3 <= len(dest) <= 20:
        raise Refused(Status.ESME_RINVDSTADR, "destination must be 3 to 20 digits")
    if pdu.priority_flag > 3:
        raise Refused(Status.ESME_RINVPRTFLG, "priority_flag above 3")
    if pdu.registered_delivery & 0x03 == 0x03 and interface_version < 0x50:
        raise Refused(Status.ESME_RINVREGDLVFLG, "registered_delivery bits 1-0 = 11 is reserved in 3.4")
    payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    data = pdu.short_message if payload is None else payload
    if pdu.esm_class & ESM_UDHI and data:
        udh_len = data[0] + 1
        if udh_len > len(data):
            raise Refused(Status.ESME_RINVESMCLASS, "UDHI set but the UDH is longer than the message")
        data = data[udh_len:]
    try:
        text = decode_text(data, pdu.data_coding, dc0=dc0, dc1=dc1)
    except TextError as e:
        raise Refused(Status.ESME_RSUBMITFAIL, f"data_coding {pdu.data_coding:#x}: {e}") from None
    when = datetime.fromtimestamp(now, UTC)
    try:
        schedule = parse_smpp_time(pdu.schedule_delivery_time, when)
    except ValueError:
        raise Refused(Status.ESME_RINVSCHED, "schedule_delivery_time malformed") from None
    try:
        validity = parse_smpp_time(pdu.validity_period, when)
    except ValueError:
        raise Refused(Status.ESME_RINVEXPIRY, "validity_period malformed") from None
    umr = pdu.tlv(Tag.USER_MESSAGE_REFERENCE)
    return Prepared(
        destination=dest,
        text=text,
        user_message_reference=int.from_bytes(umr, "big") if umr and len(umr) == 2 else None,
        schedule_at=schedule.timestamp() if schedule else None,
        valid_until=validity.timestamp() if validity else None,
    )
