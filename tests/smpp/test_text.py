"""Alphabets by data_coding (smpp34.md §1.7): every GSM 03.38 position and extension char,
packing, UCS2 with surrogates and BOMs, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.smpp.text import (
    GSM_ALPHABET,
    TextError,
    decode_text,
    encode_text,
    gsm_encode,
    gsm_septets,
    is_gsm,
    pack_septets,
    unpack_septets,
)

# Positions that differ from ASCII, exactly as smpp34.md §1.7 lists them.
GSM_NON_ASCII = {
    0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x04: "è", 0x05: "é", 0x06: "ù", 0x07: "ì",
    0x08: "ò", 0x09: "Ç", 0x0A: "\n", 0x0B: "Ø", 0x0C: "ø", 0x0D: "\r", 0x0E: "Å", 0x0F: "å",
    0x10: "Δ", 0x11: "_", 0x12: "Φ", 0x13: "Γ", 0x14: "Λ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ",
    0x18: "Σ", 0x19: "Θ", 0x1A: "Ξ", 0x1C: "Æ", 0x1D: "æ", 0x1E: "ß", 0x1F: "É",
    0x24: "¤", 0x40: "¡", 0x5B: "Ä", 0x5C: "Ö", 0x5D: "Ñ", 0x5E: "Ü", 0x5F: "§", 0x60: "¿",
    0x7B: "ä", 0x7C: "ö", 0x7D: "ñ", 0x7E: "ü", 0x7F: "à",
}  # fmt: skip
GSM_EXTENSION = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}  # fmt: skip


def expected_char(position: int) -> str:
    return GSM_NON_ASCII.get(position, chr(position))


@pytest.mark.parametrize("position", [i for i in range(0x80) if i != 0x1B])
def test_every_gsm_position_decodes_and_encodes(position: int) -> None:
    ch = expected_char(position)
    assert decode_text(bytes([position]), 0) == ch
    assert gsm_encode(ch) == bytes([position])
    assert GSM_ALPHABET[position] == ch


@pytest.mark.parametrize(("code", "ch"), sorted(GSM_EXTENSION.items()))
def test_every_extension_char_is_an_esc_pair_of_two_septets(code: int, ch: str) -> None:
    assert gsm_encode(ch) == bytes([0x1B, code])
    assert decode_text(bytes([0x1B, code]), 0) == ch
    assert gsm_septets(ch) == 2


def test_backtick_and_other_non_gsm_chars_are_refused() -> None:
    for ch in ("`", "ç", "\t", "\x00", "😀", "Ж"):
        assert not is_gsm(ch)
        with pytest.raises(TextError):
            gsm_encode(ch)
    assert is_gsm("Hello {world} €5 @home §1")


def test_esc_before_a_septet_without_extension_shows_the_default_char() -> None:
    assert decode_text(b"\x1bA", 0) == "A"
    assert decode_text(b"a\x1b\x1bb", 0) == "a b"
    assert decode_text(b"ab\x1b", 0) == "ab "


def test_unpacked_gsm_with_an_octet_above_0x7f_is_refused() -> None:
    with pytest.raises(TextError):
        decode_text(b"\x80", 0)


def test_packing_matches_the_ts_23_038_example() -> None:
    assert pack_septets(gsm_encode("hellohello")).hex() == "e8329bfd4697d9ec37"
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37")) == gsm_encode("hellohello")


def test_seven_chars_packed_drop_their_padding_septet() -> None:
    packed = pack_septets(gsm_encode("1234567"))
    assert len(packed) == 7
    assert decode_text(packed, 0, dc0="gsm-packed") == "1234567"
    assert unpack_septets(packed, 7) == gsm_encode("1234567")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)))
def test_unpack_with_count_inverts_pack(septets: bytes) -> None:
    assert unpack_septets(pack_septets(septets), len(septets)) == septets


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(GSM_ALPHABET.replace("\x1b", "") + "".join(GSM_EXTENSION.values()))))
def test_gsm_text_round_trips(text: str) -> None:
    assert decode_text(gsm_encode(text), 0) == text
    assert gsm_septets(text) == len(text) + sum(ch in GSM_EXTENSION.values() for ch in text)


def test_ucs2_decodes_surrogate_pairs() -> None:
    assert decode_text("hi 😀👍🏽".encode("utf-16-be"), 8) == "hi 😀👍🏽"
    assert decode_text(bytes.fromhex("d83dde00"), 8) == "😀"


def test_ucs2_bom_is_stripped_and_ff_fe_means_little_endian() -> None:
    assert decode_text(b"\xfe\xff" + "Привет".encode("utf-16-be"), 8) == "Привет"
    assert decode_text(b"\xff\xfe" + "Привет".encode("utf-16-le"), 8) == "Привет"


def test_broken_ucs2_is_a_text_error() -> None:
    with pytest.raises(TextError):
        decode_text(b"\x00a\x00", 8)  # odd length
    with pytest.raises(TextError):
        decode_text(bytes.fromhex("d83d0041"), 8)  # lone high surrogate


def test_dc0_and_dc1_charsets_are_configurable() -> None:
    assert decode_text(b"\x00", 0) == "@"
    assert decode_text(b"\xe9", 0, dc0="latin-1") == "é"
    assert decode_text(b"a$", 1) == "a$"
    assert decode_text(b"\x02", 1, dc1="gsm") == "$"
    assert decode_text(b"\x24", 1, dc1="gsm") == "¤"
    with pytest.raises(TextError):
        decode_text(b"\xe9", 1)


def test_latin1_and_message_class_codings() -> None:
    assert decode_text(b"caf\xe9", 3) == "café"
    assert decode_text(b"\x00", 0xF0) == "@"
    assert decode_text(b"\x00", 0xF3) == "@"


@pytest.mark.parametrize("dc", [2, 4, 0xF4, 0xF7])
def test_binary_data_codings_are_refused(dc: int) -> None:
    with pytest.raises(TextError, match="binary"):
        decode_text(b"\x01\x02", dc)


@pytest.mark.parametrize("dc", [5, 9, 0x0D, 0x0F, 0x40, 0xC0])
def test_unsupported_data_codings_are_refused(dc: int) -> None:
    with pytest.raises(TextError):
        decode_text(b"abc", dc)


def test_national_sets_decode() -> None:
    assert decode_text("Ж".encode("iso8859_5"), 6) == "Ж"
    assert decode_text("ש".encode("iso8859_8"), 7) == "ש"


def test_encode_text_picks_gsm_then_ucs2() -> None:
    assert encode_text("Hello €") == (0, b"Hello \x1be")
    assert encode_text("Привет") == (8, "Привет".encode("utf-16-be"))
    assert encode_text("café", dc0="latin-1") == (0, b"caf\xe9")
