"""Long-message segment info (smpp34.md §1.8): UDH IE 0x00 / 0x08 and the sar_* TLVs."""

from __future__ import annotations

import pytest

from smppgw.smpp.concat import Segment, concat_info, make_udh, sar_tlvs, split_udh
from smppgw.smpp.constants import ESM_UDHI, Tag


def test_8bit_reference_udh_as_smpplib_sends_it() -> None:
    sm = bytes.fromhex("050003a70201") + b"part one"
    assert concat_info(0x40, sm, ()) == (Segment(0xA7, 2, 1), b"part one")


def test_16bit_reference_udh_as_go_smpp_sends_it() -> None:
    sm = bytes.fromhex("06080412340302") + b"x"
    assert concat_info(0x43, sm, ()) == (Segment(0x1234, 3, 2), b"x")


def test_make_udh_builds_both_forms() -> None:
    assert make_udh(0xA7, 2, 1) == bytes.fromhex("050003a70201")
    assert make_udh(0x1234, 3, 2, sixteen_bit=True) == bytes.fromhex("06080412340302")
    with pytest.raises(ValueError):
        make_udh(256, 2, 1)
    with pytest.raises(ValueError):
        make_udh(1, 2, 3)


def test_udh_with_other_elements_still_finds_the_segment() -> None:
    ports = bytes.fromhex("0404") + b"\x0b\x84\x23\xf0"
    udh = bytes([len(ports) + 5]) + ports + bytes.fromhex("00030a0303")
    assert concat_info(ESM_UDHI, udh + b"body", ()) == (Segment(10, 3, 3), b"body")


def test_udhi_without_a_concat_element_is_not_a_segment_but_the_udh_is_removed() -> None:
    assert concat_info(ESM_UDHI, bytes.fromhex("03240101") + b"text", ()) == (None, b"text")


def test_out_of_range_segment_numbers_are_ignored_as_ts_23_040_says() -> None:
    assert concat_info(ESM_UDHI, bytes.fromhex("0500030a0203") + b"x", ())[0] is None
    assert concat_info(ESM_UDHI, bytes.fromhex("0500030a0000") + b"x", ())[0] is None


@pytest.mark.parametrize(
    "sm",
    [b"", bytes.fromhex("09000301"), bytes.fromhex("0300040102"), bytes.fromhex("0400020102"), b"\x01\x00"],
    ids=["empty", "udhl_overruns", "ie_overruns", "concat_ie_wrong_size", "ie_header_cut"],
)
def test_malformed_udh_is_a_value_error(sm: bytes) -> None:
    with pytest.raises(ValueError):
        concat_info(ESM_UDHI, sm, ())


def test_split_udh_keeps_the_length_octet() -> None:
    assert split_udh(bytes.fromhex("050003010201") + b"ab") == (bytes.fromhex("050003010201"), b"ab")


def test_sar_tlvs_give_the_segment_without_udhi() -> None:
    tlvs = (
        (Tag.SAR_MSG_REF_NUM, b"\x01\x02"),
        (Tag.SAR_TOTAL_SEGMENTS, b"\x03"),
        (Tag.SAR_SEGMENT_SEQNUM, b"\x02"),
    )
    assert concat_info(0, b"abc", tlvs) == (Segment(0x0102, 3, 2), b"abc")
    assert sar_tlvs(0x0102, 3, 2) == tlvs


def test_sar_tlvs_are_ignored_unless_all_three_are_present() -> None:
    tlvs = ((Tag.SAR_MSG_REF_NUM, b"\x01\x02"), (Tag.SAR_TOTAL_SEGMENTS, b"\x03"))
    assert concat_info(0, b"abc", tlvs) == (None, b"abc")


def test_udhi_wins_over_sar_tlvs() -> None:
    tlvs = sar_tlvs(9, 2, 2)
    assert concat_info(ESM_UDHI, make_udh(1, 2, 1) + b"a", tlvs) == (Segment(1, 2, 1), b"a")


def test_message_without_udhi_or_sar_is_not_a_segment() -> None:
    assert concat_info(0, bytes.fromhex("050003010201"), ()) == (None, bytes.fromhex("050003010201"))
