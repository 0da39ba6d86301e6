"""Message text <-> bytes by data_coding (smpp34.md §1.7): GSM 03.38 (unpacked and packed),
its extension table, Latin-1, IA5/ASCII, UCS2 (UTF-16BE with surrogates) and a few national
sets; binary data_codings are refused with TextError.

Bytes of a long message must be reassembled before decoding: clients split ESC pairs and
surrogate pairs across segments.
"""

from __future__ import annotations

import codecs

# GSM 03.38 default alphabet, position = septet value (3GPP TS 23.038 §6.2.1). 0x1B is ESC,
# held here as a placeholder that the decoder never emits for a well-formed ESC pair.
GSM_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
ESC = 0x1B
# The extension table: ESC followed by these septets.
GSM_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

# text -> septet string (as latin-1 code points) for str.translate; ESC itself is not a character
_ENCODE: dict[int, str] = {ord(ch): chr(i) for i, ch in enumerate(GSM_ALPHABET) if i != ESC}
_ENCODE.update({ord(ch): "\x1b" + chr(code) for code, ch in GSM_EXTENSION.items()})
# Every other code point below 0x80 must not survive translate() as itself (e.g. '`', '\x01').
_ENCODE.update({i: "\uffff" for i in range(0x80) if i not in _ENCODE})
_DECODE = {i: ch for i, ch in enumerate(GSM_ALPHABET)}
_EXT_DECODE = {code: ch for code, ch in GSM_EXTENSION.items()}
_GSM_CHARS = frozenset(GSM_ALPHABET) - {"\x1b"}
_EXT_CHARS = frozenset(GSM_EXTENSION.values())
_ANY_GSM = _GSM_CHARS | _EXT_CHARS
# septet -> character as a charmap table: one C call decodes a message without ESC pairs
_DECODE_TABLE = GSM_ALPHABET + "\ufffe" * 128

CHARSETS = ("gsm", "gsm-packed", "latin-1", "ascii")


class TextError(ValueError):
    """Bytes that do not decode in their data_coding, text outside a charset, or binary data."""


def is_gsm(text: str) -> bool:
    """Whether every character has a GSM 03.38 code (default or extension table)."""
    return _ANY_GSM.issuperset(text)


def gsm_septets(text: str) -> int:
    """Septets `text` takes in GSM 03.38; extension characters count two. TextError if not GSM."""
    return len(gsm_encode(text))


def gsm_encode(text: str) -> bytes:
    """Unpacked GSM 03.38: one octet per septet, extension characters as ESC pairs."""
    try:
        return text.translate(_ENCODE).encode("ascii")
    except UnicodeEncodeError:
        bad = next(ch for ch in text if ch not in _GSM_CHARS and ch not in _EXT_CHARS)
        raise TextError(f"{bad!r} has no GSM 03.38 code") from None


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 septets to text.

    ESC before a septet with no extension meaning shows that septet's default character
    (TS 23.038 §6.2.1.1); ESC ESC and a trailing ESC show a space.
    """
    if not data.isascii():
        raise TextError("octet above 0x7F in unpacked GSM 03.38")
    if ESC not in data:
        return codecs.charmap_decode(data, "strict", _DECODE_TABLE)[0]
    out = []
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b == ESC:
            if i + 1 >= n or data[i + 1] == ESC:
                out.append(" ")
            else:
                nxt = data[i + 1]
                out.append(_EXT_DECODE.get(nxt) or _DECODE[nxt])
            i += 2
        else:
            out.append(_DECODE[b])
            i += 1
    return "".join(out)


def pack_septets(data: bytes) -> bytes:
    """Pack 7-bit septets LSB first into octets (TS 23.038 §6.1.2.1)."""
    out = bytearray()
    acc = 0
    bits = 0
    for septet in data:
        if septet > 0x7F:
            raise TextError("septet above 0x7F")
        acc |= septet << bits
        bits += 7
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc)
    return bytes(out)


def unpack_septets(data: bytes, count: int | None = None) -> bytes:
    """Unpack octets into septets, one per octet.

    Without `count`, a last septet that only fills 7 spare bits is dropped when it is 0 or CR:
    the padding TS 23.038 §6.1.2.3.1 prescribes (a wanted final CR is then sent twice).
    """
    max_count = len(data) * 8 // 7
    if count is None:
        n = max_count
    elif count > max_count or count < 0:
        raise TextError(f"{count} septets do not fit in {len(data)} octets")
    else:
        n = count
    out = bytearray()
    acc = 0
    bits = 0
    it = iter(data)
    while len(out) < n:
        if bits < 7:
            acc |= next(it) << bits
            bits += 8
        out.append(acc & 0x7F)
        acc >>= 7
        bits -= 7
    if count is None and out and len(data) * 8 % 7 == 0 and out[-1] in (0x00, 0x0D):
        del out[-1]
    return bytes(out)


def unpack_after_udh(user_data: bytes, udh_length: int) -> bytes:
    """The septets of packed GSM user data that follow a UDH of `udh_length` octets (its length
    octet included). The text starts on the next septet boundary after the header (fill bits,
    TS 23.040 §9.2.3.24)."""
    header_septets = (udh_length * 8 + 6) // 7
    return unpack_septets(user_data)[header_septets:]


def _charset(data: bytes, charset: str) -> str:
    if charset == "gsm":
        return gsm_decode(data)
    if charset == "gsm-packed":
        return gsm_decode(unpack_septets(data))
    if charset == "latin-1":
        return data.decode("latin-1")
    if charset == "ascii":
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise TextError("octet above 0x7F in IA5/ASCII") from None
    raise ValueError(f"unknown charset {charset!r} (one of {', '.join(CHARSETS)})")


def decode_ucs2(data: bytes) -> str:
    """UCS2 as sent in practice: UTF-16BE with surrogate pairs; a BOM is honoured and stripped."""
    codec = "utf-16-be"
    if data[:2] == b"\xfe\xff":
        data = data[2:]
    elif data[:2] == b"\xff\xfe":
        data, codec = data[2:], "utf-16-le"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise TextError(f"bad UCS2: {exc.reason}") from None


# National character sets of §5.2.19 with an unambiguous Python codec.
_NATIONAL = {0x06: "iso8859_5", 0x07: "iso8859_8", 0x0A: "iso2022_jp", 0x0E: "euc_kr"}


def decode_text(data: bytes, data_coding: int, *, dc0: str = "gsm", dc1: str = "ascii") -> str:
    """The text of a short_message / message_payload in `data_coding`.

    dc0 and dc1 name the charset ("gsm", "gsm-packed", "latin-1", "ascii") an account uses for
    data_coding 0 (SMSC default) and 1 (IA5): clients disagree (smpp34.md §1.7). Binary
    data_codings (2, 4, 0xF4-0xF7) and unsupported ones raise TextError.
    """
    if data_coding == 0:
        return _charset(data, dc0)
    if data_coding == 1:
        return _charset(data, dc1)
    if data_coding == 3:
        return data.decode("latin-1")
    if data_coding == 8:
        return decode_ucs2(data)
    if data_coding in (2, 4):
        raise TextError("binary data_coding")
    if 0xF0 <= data_coding <= 0xFF:
        # Message class group (TS 23.038 §4): bit 2 picks 8-bit data over the GSM alphabet;
        # bit 3 is reserved and ignored. The GSM variant follows the account's dc 0 setting.
        if data_coding & 0x04:
            raise TextError("binary data_coding")
        return _charset(data, dc0 if dc0.startswith("gsm") else "gsm")
    codec = _NATIONAL.get(data_coding)
    if codec is not None:
        try:
            return data.decode(codec)
        except UnicodeDecodeError as exc:
            raise TextError(f"bad {codec}: {exc.reason}") from None
    raise TextError(f"unsupported data_coding 0x{data_coding:02X}")


def encode_text(text: str, *, dc0: str = "gsm") -> tuple[int, bytes]:
    """(data_coding, bytes) for sending `text`: data_coding 0 in the dc0 charset if it fits,
    else UCS2 (8)."""
    if dc0 in ("gsm", "gsm-packed") and is_gsm(text):
        raw = gsm_encode(text)
        return 0, pack_septets(raw) if dc0 == "gsm-packed" else raw
    if dc0 in ("latin-1", "ascii"):
        try:
            return 0, text.encode(dc0)
        except UnicodeEncodeError:
            pass
    return 8, text.encode("utf-16-be")
