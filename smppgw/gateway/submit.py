"""Checks and decoding of one message before it is stored: the refusal status for each bad
field (smpp34.md §1.3), the text decoded from its data_coding in the account's charsets, the
time fields, and whether it is one part of a long message (UDH or SAR).

A part is not decoded for the provider here: clients split ESC pairs and surrogate pairs
across parts, so reassembly joins the raw `payload`s first (reassembly.py) and decodes once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from smppgw.logs import event
from smppgw.smpp.concat import IE_CONCAT_8, IE_CONCAT_16, Segment, concat_info, split_udh, udh_elements
from smppgw.smpp.constants import ESM_UDHI, Status, Tag
from smppgw.smpp.pdu import SubmitSm
from smppgw.smpp.text import TextError, decode_text, gsm_decode, unpack_after_udh
from smppgw.smpp.timefmt import parse_smpp_time

Reply = Callable[[int, str], None]  # (command_status, message_id, or the reason of a refusal)
log = logging.getLogger("smppgw.submit")

_NPIS = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})  # §5.2.6
_MAX_TON = 6  # §5.2.5
_ESM_TYPE = 0x3C  # ESME→SMSC message type bits: acks we cannot carry to an HTTP provider
_RD_RESERVED = 0xE0
_MESSAGE_PAYLOAD = int(Tag.MESSAGE_PAYLOAD)
_USER_MESSAGE_REFERENCE = int(Tag.USER_MESSAGE_REFERENCE)


class Refused(Exception):
    """A message refused before it is stored: `status` for the resp, `reason` a metric label."""

    def __init__(self, status: int, why: str, reason: str = "refused") -> None:
        super().__init__(why)
        self.status = status
        self.reason = reason


@dataclass(slots=True)  # not frozen: built once per message, a frozen init costs twice as much
class Prepared:
    destination: str
    text: str  # the decoded text; for a part, this part alone as far as it decodes
    user_message_reference: int | None
    schedule_at: float | None
    valid_until: float | None
    segment: Segment | None = None  # set when this is one part of a long message
    segment_kind: str = ""  # "udh8", "udh16" or "sar": references of different kinds never mix
    payload: bytes = b""  # a part's content in joinable form (packed GSM already unpacked)
    packed: bool = False  # payload holds septets from packed GSM (decode as unpacked GSM)


def is_binary(data_coding: int) -> bool:
    """8-bit data no HTTP provider of ours can carry (§5.2.19; 0xF4-0xF7 class with 8-bit data)."""
    return data_coding in (2, 4) or (data_coding >= 0xF0 and bool(data_coding & 0x04))


def _is_packed(data_coding: int, dc0: str, dc1: str) -> bool:
    if data_coding == 0 or 0xF0 <= data_coding <= 0xF3:
        return dc0 == "gsm-packed"
    return data_coding == 1 and dc1 == "gsm-packed"


def decode_payload(payload: bytes, data_coding: int, packed: bool, dc0: str, dc1: str) -> str:
    """Text of a (joined) payload from `Prepared`; raises TextError."""
    if packed:
        return gsm_decode(payload)
    return decode_text(payload, data_coding, dc0=dc0, dc1=dc1)


def _fragment_text(payload: bytes, data_coding: int, packed: bool, dc0: str, dc1: str) -> str:
    """A part's own text for its receipt's text: field; a split surrogate pair is dropped."""
    try:
        return decode_payload(payload, data_coding, packed, dc0, dc1)
    except TextError:
        if data_coding == 8:
            return payload[: len(payload) & ~1].decode("utf-16-be", "ignore")
        return ""


def check_address(ton: int, npi: int, addr: str, source: bool) -> None:
    """TON/NPI and the shape of an address (smpp34.md §1.3: 0x48-0x51, 0x0A, 0x0B)."""
    if ton > _MAX_TON:
        raise Refused(Status.ESME_RINVSRCTON if source else Status.ESME_RINVDSTTON, f"TON {ton}", "bad_ton")
    if npi not in _NPIS:
        raise Refused(Status.ESME_RINVSRCNPI if source else Status.ESME_RINVDSTNPI, f"NPI {npi}", "bad_npi")
    if source:
        if not addr.isprintable() or (ton == 5 and len(addr) > 11):
            raise Refused(Status.ESME_RINVSRCADR, "alphanumeric source longer than 11", "bad_source")
        if ton in (1, 2) and addr and not addr.lstrip("+").isdigit():
            raise Refused(Status.ESME_RINVSRCADR, "numeric source TON with a non-digit source", "bad_source")


def destination_of(addr: str) -> str:
    dest = addr[1:] if addr.startswith("+") else addr
    if not dest.isdigit() or not dest.isascii() or not 3 <= len(dest) <= 20:
        raise Refused(Status.ESME_RINVDSTADR, "destination must be 3 to 20 digits", "bad_destination")
    return dest


def parse_times(schedule: str, validity: str, now: float) -> tuple[float | None, float | None]:
    if not schedule and not validity:
        return None, None  # most messages: neither time set
    when = datetime.fromtimestamp(now, UTC)
    try:
        at = parse_smpp_time(schedule, when)
    except ValueError:
        raise Refused(Status.ESME_RINVSCHED, "schedule_delivery_time malformed", "bad_schedule") from None
    try:
        until = parse_smpp_time(validity, when)
    except ValueError:
        raise Refused(Status.ESME_RINVEXPIRY, "validity_period malformed", "bad_validity") from None
    return (at.timestamp() if at else None), (until.timestamp() if until else None)


def prepare(
    pdu: SubmitSm, interface_version: int, now: float, dc0: str = "gsm", dc1: str = "ascii"
) -> Prepared:
    """Check one submit_sm (or a data_sm / submit_multi destination shaped as one); raises Refused."""
    dest = destination_of(pdu.destination_addr)
    check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
    check_address(pdu.dest_addr_ton, pdu.dest_addr_npi, dest, source=False)
    if pdu.priority_flag > 3:
        raise Refused(Status.ESME_RINVPRTFLG, "priority_flag above 3", "bad_priority")
    rd = pdu.registered_delivery
    if interface_version < 0x50 and (rd & 0x03 == 0x03 or rd & _RD_RESERVED):
        raise Refused(Status.ESME_RINVREGDLVFLG, "registered_delivery uses reserved bits", "bad_rd")
    if pdu.replace_if_present_flag > 1:
        raise Refused(Status.ESME_RINVREPFLAG, "replace_if_present_flag above 1", "bad_replace_flag")
    if pdu.esm_class & _ESM_TYPE:
        raise Refused(Status.ESME_RINVESMCLASS, "esm_class message type not supported", "bad_esm_class")
    if pdu.sm_default_msg_id:
        raise Refused(Status.ESME_RINVDFTMSGID, "no canned messages here", "bad_sm_default_msg_id")
    payload_tlv = pdu.tlv(_MESSAGE_PAYLOAD) if pdu.tlvs else None
    if payload_tlv is not None and pdu.short_message:
        raise Refused(Status.ESME_RINVMSGLEN, "short_message and message_payload both set", "bad_length")
    data = pdu.short_message if payload_tlv is None else payload_tlv
    dc = pdu.data_coding
    if is_binary(dc):
        raise Refused(
            Status.ESME_RSUBMITFAIL,
            f"binary data_coding {dc:#04x}: no HTTP provider carries 8-bit data",
            "binary_data_coding",
        )
    if pdu.esm_class & ESM_UDHI or pdu.tlvs:
        try:
            segment, body = concat_info(pdu.esm_class, data, pdu.tlvs)
        except ValueError as e:
            raise Refused(Status.ESME_RINVESMCLASS, f"UDH: {e}", "bad_udh") from None
    else:
        segment, body = None, data  # no UDH and no sar_* TLVs: not a part (what concat_info says)
    packed = _is_packed(dc, dc0, dc1)
    if packed:
        body = unpack_after_udh(data, len(data) - len(body))
    if segment is not None and segment.total == 1:
        segment = None  # one part of one: the message itself
    if segment is None:
        try:
            text = (
                gsm_decode(body) if dc == 0 and dc0 == "gsm" else decode_payload(body, dc, packed, dc0, dc1)
            )
        except TextError as e:
            raise Refused(Status.ESME_RSUBMITFAIL, f"data_coding {dc:#04x}: {e}", "bad_text") from None
        kind = ""
    else:
        text = _fragment_text(body, dc, packed, dc0, dc1)
        kind = "sar" if not pdu.esm_class & ESM_UDHI else ("udh16" if _udh16(data) else "udh8")
    schedule_at, valid_until = parse_times(pdu.schedule_delivery_time, pdu.validity_period, now)
    umr = pdu.tlv(_USER_MESSAGE_REFERENCE) if pdu.tlvs else None
    return Prepared(
        dest,
        text,
        int.from_bytes(umr, "big") if umr and len(umr) == 2 else None,
        schedule_at,
        valid_until,
        segment,
        kind,
        body if segment is not None else b"",
        packed,
    )


def _udh16(data: bytes) -> bool:
    """The UDH's concatenation IE is 0x08 (16-bit reference) rather than 0x00."""
    if len(data) > 2 and data[0] in (5, 6) and data[1] == (IE_CONCAT_16 if data[0] == 6 else IE_CONCAT_8):
        return data[0] == 6  # the usual UDH: that IE alone (5 octets for 0x00, 6 for 0x08)
    return any(iei == IE_CONCAT_16 for iei, _ in udh_elements(split_udh(data)[0]))


class RefusalLog:
    """Explains refusals in the log without a line per message: the first refusal of a kind for
    an account is logged at once, then at most one line per `every` seconds with the count of
    those left unsaid."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._seen: dict[tuple[str, str], list[float]] = {}  # (account, reason) -> [logged at, unsaid]

    def note(self, account: str, refused: Refused, now: float) -> None:
        key = (account, refused.reason)
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.every:
            entry[1] += 1
            return
        unsaid = int(entry[1]) if entry is not None else 0
        self._seen[key] = [now, 0]
        event(
            log,
            "submit_refused",
            logging.WARNING,
            account=account,
            reason=refused.reason,
            status=hex(refused.status),
            detail=str(refused),
            unsaid=unsaid,
        )
