"""Concatenated (long) messages, smpp34.md §1.8: the User Data Header of TS 23.040 §9.2.3.24
(IE 0x00 with an 8-bit reference, IE 0x08 with a 16-bit one) and the sar_* TLVs.

Only finds and builds segment information; reassembly (which needs storage and timeouts)
belongs to the gateway. Decode the text after reassembling the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .constants import ESM_UDHI, Tag

IE_CONCAT_8 = 0x00
IE_CONCAT_16 = 0x08


@dataclass(frozen=True, slots=True)
class Segment:
    """Part `seq` (1-based) of `total`, all parts sharing reference `ref`."""

    ref: int
    total: int
    seq: int


def split_udh(short_message: bytes) -> tuple[bytes, bytes]:
    """(UDH including its length octet, the rest) of a message sent with esm_class UDHI."""
    if not short_message:
        raise ValueError("UDHI set but the message is empty")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise ValueError(f"UDH length {short_message[0]} overruns a {len(short_message)}-octet message")
    return short_message[:end], short_message[end:]


def udh_elements(udh: bytes) -> list[tuple[int, bytes]]:
    """The (IEI, data) information elements of a UDH (length octet included), in order."""
    elements = []
    pos = 1
    end = len(udh)
    while pos < end:
        if pos + 2 > end:
            raise ValueError("UDH ends inside an information element header")
        iei = udh[pos]
        length = udh[pos + 1]
        pos += 2
        if pos + length > end:
            raise ValueError(f"UDH element 0x{iei:02X} of {length} octets overruns the UDH")
        elements.append((iei, udh[pos : pos + length]))
        pos += length
    return elements


def _segment(ref: int, total: int, seq: int) -> Segment | None:
    # TS 23.040 §9.2.3.24.1: a zero total, or a seq of 0 or beyond total, means "ignore the IE".
    if total == 0 or not 1 <= seq <= total:
        return None
    return Segment(ref, total, seq)


def concat_info(
    esm_class: int, short_message: bytes, tlvs: Iterable[tuple[int, bytes]] = ()
) -> tuple[Segment | None, bytes]:
    """The segment a message is part of (None if it stands alone), and its payload without UDH.

    With UDHI in esm_class the UDH decides (its concat IE, or none); otherwise all three sar_*
    TLVs must be present (any missing: not a segment, §5.3.2.22-24). Pass message_payload's
    value as `short_message` when that is where the message is. Raises ValueError on a
    malformed UDH or a concat IE / sar_* TLV of the wrong size.
    """
    if esm_class & ESM_UDHI:
        udh, payload = split_udh(short_message)
        segment = None
        for iei, data in udh_elements(udh):
            if iei == IE_CONCAT_8:
                if len(data) != 3:
                    raise ValueError(f"concatenation IE 0x00 of {len(data)} octets")
                segment = _segment(data[0], data[1], data[2])
            elif iei == IE_CONCAT_16:
                if len(data) != 4:
                    raise ValueError(f"concatenation IE 0x08 of {len(data)} octets")
                segment = _segment(int.from_bytes(data[:2], "big"), data[2], data[3])
        return segment, payload
    ref = total = seq = None
    for tag, value in tlvs:
        if tag == Tag.SAR_MSG_REF_NUM and ref is None:
            ref = _sar_int(value, 2, "sar_msg_ref_num")
        elif tag == Tag.SAR_TOTAL_SEGMENTS and total is None:
            total = _sar_int(value, 1, "sar_total_segments")
        elif tag == Tag.SAR_SEGMENT_SEQNUM and seq is None:
            seq = _sar_int(value, 1, "sar_segment_seqnum")
    if ref is None or total is None or seq is None:
        return None, short_message
    return _segment(ref, total, seq), short_message


def _sar_int(value: bytes, size: int, name: str) -> int:
    if len(value) != size:
        raise ValueError(f"{name} of {len(value)} octets (expected {size})")
    return int.from_bytes(value, "big")


def make_udh(ref: int, total: int, seq: int, sixteen_bit: bool = False) -> bytes:
    """The UDH (length octet included) marking part `seq` of `total` with reference `ref`."""
    if not 1 <= total <= 255 or not 1 <= seq <= total:
        raise ValueError(f"segment {seq} of {total}")
    if sixteen_bit:
        if not 0 <= ref <= 0xFFFF:
            raise ValueError(f"16-bit reference {ref}")
        return bytes((6, IE_CONCAT_16, 4, ref >> 8, ref & 0xFF, total, seq))
    if not 0 <= ref <= 0xFF:
        raise ValueError(f"8-bit reference {ref}")
    return bytes((5, IE_CONCAT_8, 3, ref, total, seq))


def sar_tlvs(ref: int, total: int, seq: int) -> tuple[tuple[int, bytes], ...]:
    """The three sar_* TLVs marking part `seq` of `total` with 16-bit reference `ref`."""
    if not 1 <= total <= 255 or not 1 <= seq <= total or not 0 <= ref <= 0xFFFF:
        raise ValueError(f"segment {seq} of {total}, reference {ref}")
    return (
        (Tag.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")),
        (Tag.SAR_TOTAL_SEGMENTS, bytes((total,))),
        (Tag.SAR_SEGMENT_SEQNUM, bytes((seq,))),
    )


def _septet_coding(data_coding: int) -> bool:
    return data_coding in (0, 1) or 0xF0 <= data_coding <= 0xF3


def sms_capacity(data_coding: int, udh_length: int = 0) -> int:
    """Octets of user data one SMS holds for unpacked 7-bit text (one septet per octet: 160
    minus the header's septets) or 8-bit / UCS2 data (140 minus the header)."""
    if _septet_coding(data_coding):
        return 160 - (udh_length * 8 + 6) // 7
    return 140 - udh_length


def split_user_data(data: bytes, data_coding: int, size: int) -> list[bytes]:
    """Cut `data` into chunks of at most `size` octets, never between the two octets of a GSM
    ESC pair (unpacked 7-bit codings) or inside a UTF-16 surrogate pair (data_coding 8)."""
    if size < 4:
        raise ValueError(f"chunks of {size} octets")
    chunks: list[bytes] = []
    start = pos = 0
    end = len(data)
    septets = _septet_coding(data_coding)
    while pos < end:
        if septets:
            step = 2 if data[pos] == 0x1B and pos + 1 < end else 1
        elif data_coding == 8:
            step = 4 if 0xD8 <= data[pos] <= 0xDB and pos + 3 < end else 2
        else:
            step = 1
        if pos + step - start > size:
            chunks.append(data[start:pos])
            start = pos
        pos += step
    chunks.append(data[start:end])
    return chunks
