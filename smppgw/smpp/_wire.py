"""The wire description of PDU bodies, private to codec.py: codecs for the field types (§3.1)
and the TLV stream (§3.2.4), and `LAYOUTS`, each PDU class's body as field codecs in wire order.

A field codec has a `name` (the pdu.py attribute it fills), `decode(buf, pos, end) ->
(value, new_pos)`, which raises `Malformed` with the command_status smpp34.md §1.2-§1.3 names,
and `encode(value) -> bytes`, which raises ValueError.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from operator import attrgetter
from typing import Any, Protocol

from . import pdu as p
from .constants import MAX_DESTINATIONS, MAX_SHORT_MESSAGE, RESP, TLV_LENGTHS, Status, Tag

_TLV_HEADER = struct.Struct(">HH")
_U32 = struct.Struct(">I")
Destination = p.SmeAddress | p.DistributionList


class FieldCodec(Protocol):
    name: str

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[Any, int]: ...

    def encode(self, value: Any) -> bytes: ...


class Malformed(Exception):
    """A body that does not parse; codec.decode turns it into a PduError with the PDU's ids."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def cstr(buf: bytes, pos: int, end: int, size: int, code: int, name: str) -> tuple[str, int]:
    """Read a C-Octet-String of at most `size` octets including its NUL."""
    limit = pos + size
    nul = buf.find(b"\0", pos, limit if limit < end else end)
    if nul < 0:
        if end - pos >= size:
            raise Malformed(code, f"{name} longer than {size - 1} octets")
        raise Malformed(Status.ESME_RINVPARLEN, f"{name} has no NUL before the end of the body")
    return buf[pos:nul].decode("latin-1"), nul + 1


def time_field(buf: bytes, pos: int, end: int, code: int, name: str) -> tuple[str, int]:
    """Read a time C-string: empty or exactly 16 characters (§7.1.1)."""
    value, new_pos = cstr(buf, pos, end, 17, code, name)
    if len(value) not in (0, 16):
        raise Malformed(code, f"{name} of {len(value)} characters (0 or 16 allowed)")
    return value, new_pos


def encode_cstr(value: str, size: int, name: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= size:
        raise ValueError(f"{name} longer than {size - 1} octets")
    # `0 in raw`, not `b"\0" in raw`: bytes.__contains__ tries its operand as an int first,
    # which for a bytes operand raises and clears a TypeError (its message formatted)
    if 0 in raw:
        raise ValueError(f"{name} contains NUL")
    return raw + b"\0"


class CStr:
    __slots__ = ("name", "size", "code")

    def __init__(self, name: str, size: int, code: int):
        self.name = name
        self.size = size  # including the NUL
        self.code = code  # status for a value longer than size - 1

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[str, int]:
        return cstr(buf, pos, end, self.size, self.code, self.name)

    def encode(self, value: str) -> bytes:
        return encode_cstr(value, self.size, self.name)


class Time(CStr):
    __slots__ = ()

    def __init__(self, name: str, code: int):
        super().__init__(name, 17, code)

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[str, int]:
        return time_field(buf, pos, end, self.code, self.name)

    def encode(self, value: str) -> bytes:
        if len(value) not in (0, 16):
            raise ValueError(f"{self.name} must be empty or 16 characters, not {value!r}")
        return encode_cstr(value, 17, self.name)


class U8:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        if pos >= end:
            raise Malformed(Status.ESME_RINVPARLEN, f"body ends before {self.name}")
        return buf[pos], pos + 1

    def encode(self, value: int) -> bytes:
        return bytes((value,))


class ShortMessage:
    """sm_length followed by that many octets."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
        if pos >= end:
            raise Malformed(Status.ESME_RINVPARLEN, "body ends before sm_length")
        length = buf[pos]
        pos += 1
        if length > MAX_SHORT_MESSAGE or pos + length > end:
            raise Malformed(Status.ESME_RINVMSGLEN, f"sm_length {length} with {end - pos} octets left")
        return buf[pos : pos + length], pos + length

    def encode(self, value: bytes) -> bytes:
        if len(value) > MAX_SHORT_MESSAGE:
            raise ValueError(f"short_message of {len(value)} octets (max {MAX_SHORT_MESSAGE})")
        return bytes((len(value),)) + value


def _count(buf: bytes, pos: int, end: int, name: str) -> int:
    if pos >= end:
        raise Malformed(Status.ESME_RINVPARLEN, f"body ends before {name}")
    return buf[pos]


class Destinations:
    """submit_multi's number_of_dests and dest_address list (§4.5.1.1)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[tuple[Destination, ...], int]:
        count = _count(buf, pos, end, "number_of_dests")
        if count > MAX_DESTINATIONS:
            raise Malformed(Status.ESME_RINVNUMDESTS, f"{count} destinations (max {MAX_DESTINATIONS})")
        pos += 1
        dests: list[Destination] = []
        for _ in range(count):
            flag = _count(buf, pos, end, "dest_flag")
            if flag == 1:
                if pos + 3 > end:
                    raise Malformed(Status.ESME_RINVPARLEN, "body ends inside a dest_address")
                address, new_pos = cstr(buf, pos + 3, end, 21, Status.ESME_RINVDSTADR, "destination_addr")
                dests.append(p.SmeAddress(buf[pos + 1], buf[pos + 2], address))
            elif flag == 2:
                name, new_pos = cstr(buf, pos + 1, end, 21, Status.ESME_RINVDLNAME, "dl_name")
                dests.append(p.DistributionList(name))
            else:
                raise Malformed(Status.ESME_RINVDESTFLAG, f"dest_flag {flag}")
            pos = new_pos
        return tuple(dests), pos

    def encode(self, value: tuple[Destination, ...]) -> bytes:
        if len(value) > MAX_DESTINATIONS:
            raise ValueError(f"{len(value)} destinations (max {MAX_DESTINATIONS})")
        parts = [bytes((len(value),))]
        for dest in value:
            if isinstance(dest, p.SmeAddress):
                parts.append(bytes((1, dest.ton, dest.npi)))
                parts.append(encode_cstr(dest.address, 21, "destination_addr"))
            else:
                parts.append(b"\x02")
                parts.append(encode_cstr(dest.name, 21, "dl_name"))
        return b"".join(parts)


class Unsuccess:
    """submit_multi_resp's no_unsuccess and unsuccess_sme list (§4.5.2)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def decode(self, buf: bytes, pos: int, end: int) -> tuple[tuple[p.UnsuccessSme, ...], int]:
        count = _count(buf, pos, end, "no_unsuccess")
        pos += 1
        smes = []
        for _ in range(count):
            if pos + 2 > end:
                raise Malformed(Status.ESME_RINVPARLEN, "body ends inside an unsuccess_sme")
            address, new_pos = cstr(buf, pos + 2, end, 21, Status.ESME_RINVDSTADR, "destination_addr")
            if new_pos + 4 > end:
                raise Malformed(Status.ESME_RINVPARLEN, "body ends before error_status_code")
            (code,) = _U32.unpack_from(buf, new_pos)
            smes.append(p.UnsuccessSme(buf[pos], buf[pos + 1], address, code))
            pos = new_pos + 4
        return tuple(smes), pos

    def encode(self, value: tuple[p.UnsuccessSme, ...]) -> bytes:
        parts = [bytes((len(value),))]
        for sme in value:
            parts.append(bytes((sme.ton, sme.npi)))
            parts.append(encode_cstr(sme.address, 21, "destination_addr"))
            parts.append(_U32.pack(sme.error_status_code))
        return b"".join(parts)


def decode_tlvs(buf: bytes, pos: int, end: int) -> p.Tlvs:
    """Every TLV from pos to end, in order. Unknown tags are kept; known ones are length-checked."""
    tlvs = []
    while pos < end:
        if end - pos < 4:
            raise Malformed(Status.ESME_RINVOPTPARSTREAM, f"{end - pos} stray octets after the TLVs")
        tag, length = _TLV_HEADER.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise Malformed(Status.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X} of {length} octets overruns")
        limits = TLV_LENGTHS.get(tag)
        if limits is not None and not limits[0] <= length <= limits[1]:
            raise Malformed(Status.ESME_RINVPARLEN, f"TLV 0x{tag:04X} of {length} octets")
        tlvs.append((tag, buf[pos : pos + length]))
        pos += length
    return tuple(tlvs)


def encode_tlvs(tlvs: p.Tlvs, *, forbid_payload: bool = False) -> bytes:
    """The TLV stream; `forbid_payload` when the PDU also has a short_message (RINVMSGLEN)."""
    parts = []
    for tag, value in tlvs:
        limits = TLV_LENGTHS.get(tag)
        if limits is not None and not limits[0] <= len(value) <= limits[1]:
            raise ValueError(f"TLV 0x{tag:04X} of {len(value)} octets (allowed {limits[0]}-{limits[1]})")
        if forbid_payload and tag == Tag.MESSAGE_PAYLOAD:
            raise ValueError("short_message and message_payload are both set")
        parts.append(_TLV_HEADER.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


# -- PDU body layouts -----------------------------------------------------------------------------

SERVICE_TYPE = CStr("service_type", 6, Status.ESME_RINVSERTYP)
SOURCE = CStr("source_addr", 21, Status.ESME_RINVSRCADR)
DEST = CStr("destination_addr", 21, Status.ESME_RINVDSTADR)
MESSAGE_ID = CStr("message_id", 65, Status.ESME_RINVPARLEN)
SCHEDULE = Time("schedule_delivery_time", Status.ESME_RINVSCHED)
VALIDITY = Time("validity_period", Status.ESME_RINVEXPIRY)
SYSTEM_ID = CStr("system_id", 16, Status.ESME_RINVSYSID)
PASSWORD = CStr("password", 9, Status.ESME_RINVPASWD)

_BIND = (
    SYSTEM_ID,
    PASSWORD,
    CStr("system_type", 13, Status.ESME_RINVSYSTYP),
    U8("interface_version"),
    U8("addr_ton"),
    U8("addr_npi"),
    CStr("address_range", 41, Status.ESME_RINVPARLEN),
)
_SM = (
    SERVICE_TYPE,
    U8("source_addr_ton"),
    U8("source_addr_npi"),
    SOURCE,
    U8("dest_addr_ton"),
    U8("dest_addr_npi"),
    DEST,
    U8("esm_class"),
    U8("protocol_id"),
    U8("priority_flag"),
    SCHEDULE,
    VALIDITY,
    U8("registered_delivery"),
    U8("replace_if_present_flag"),
    U8("data_coding"),
    U8("sm_default_msg_id"),
    ShortMessage("short_message"),
)
LAYOUTS: dict[type[p.Pdu], tuple[FieldCodec, ...]] = {
    p.GenericNack: (),
    p.Unbind: (),
    p.UnbindResp: (),
    p.EnquireLink: (),
    p.EnquireLinkResp: (),
    p.CancelSmResp: (),
    p.ReplaceSmResp: (),
    p.BindReceiver: _BIND,
    p.BindTransmitter: _BIND,
    p.BindTransceiver: _BIND,
    p.BindReceiverResp: (SYSTEM_ID,),
    p.BindTransmitterResp: (SYSTEM_ID,),
    p.BindTransceiverResp: (SYSTEM_ID,),
    p.Outbind: (SYSTEM_ID, PASSWORD),
    p.SubmitSm: _SM,
    p.DeliverSm: _SM,
    p.SubmitSmResp: (MESSAGE_ID,),
    p.DeliverSmResp: (MESSAGE_ID,),
    p.SubmitMulti: (
        SERVICE_TYPE,
        U8("source_addr_ton"),
        U8("source_addr_npi"),
        SOURCE,
        Destinations("dest_addresses"),
        *_SM[7:],
    ),
    p.SubmitMultiResp: (MESSAGE_ID, Unsuccess("unsuccess_sme")),
    p.DataSm: (
        SERVICE_TYPE,
        U8("source_addr_ton"),
        U8("source_addr_npi"),
        CStr("source_addr", 65, Status.ESME_RINVSRCADR),
        U8("dest_addr_ton"),
        U8("dest_addr_npi"),
        CStr("destination_addr", 65, Status.ESME_RINVDSTADR),
        U8("esm_class"),
        U8("registered_delivery"),
        U8("data_coding"),
    ),
    p.DataSmResp: (MESSAGE_ID,),
    p.QuerySm: (MESSAGE_ID, U8("source_addr_ton"), U8("source_addr_npi"), SOURCE),
    p.QuerySmResp: (
        MESSAGE_ID,
        Time("final_date", Status.ESME_RINVPARLEN),
        U8("message_state"),
        U8("error_code"),
    ),
    p.CancelSm: (SERVICE_TYPE, MESSAGE_ID, *_SM[1:7]),
    p.ReplaceSm: (
        MESSAGE_ID,
        *_SM[1:4],
        SCHEDULE,
        VALIDITY,
        U8("registered_delivery"),
        U8("sm_default_msg_id"),
        ShortMessage("short_message"),
    ),
    p.AlertNotification: (
        U8("source_addr_ton"),
        U8("source_addr_npi"),
        CStr("source_addr", 65, Status.ESME_RINVSRCADR),
        U8("esme_addr_ton"),
        U8("esme_addr_npi"),
        CStr("esme_addr", 65, Status.ESME_RINVPARLEN),
    ),
}
WITH_TLVS = frozenset(cls for cls in LAYOUTS if any(f.name == "tlvs" for f in fields(cls)))
# PDUs whose short_message and message_payload are mutually exclusive (RINVMSGLEN).
WITH_PAYLOAD = frozenset({p.SubmitSm, p.DeliverSm, p.SubmitMulti})
# Responses written header-only when command_status != 0 (§4.1.2, §4.4.2: "not returned" on
# error; aiosmpplib reads any body as the message_id). data_sm_resp is the exception: on error
# it is what carries delivery_failure_reason and friends, so it keeps a body it has.
BODYLESS_ON_ERROR = frozenset(cls for cls in LAYOUTS if cls.command_id & RESP and cls is not p.DataSmResp)
GETTERS = {cls: attrgetter(*(f.name for f in layout)) for cls, layout in LAYOUTS.items() if layout}
