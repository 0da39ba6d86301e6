"""Framer: cutting the TCP stream into whole PDUs (smpp34.md §1.2 framing)."""

from __future__ import annotations

import struct

import pytest

from smppgw.smpp import pdu as p
from smppgw.smpp.codec import FrameError, Framer, decode, encode


def test_pdus_fed_one_byte_at_a_time_come_out_whole() -> None:
    pdus = [p.EnquireLink(1), p.SubmitSm(2, source_addr="123", short_message=b"hi"), p.UnbindResp(3)]
    stream = b"".join(encode(x) for x in pdus)
    framer = Framer()
    frames: list[bytes] = []
    for i in range(len(stream)):
        frames += framer.feed(stream[i : i + 1])
    assert [decode(f) for f in frames] == pdus
    assert framer.buffered == 0


def test_several_pdus_in_one_chunk_and_a_partial_tail() -> None:
    a, b = encode(p.EnquireLink(1)), encode(p.DeliverSmResp(2))
    framer = Framer()
    assert framer.feed(a + b + b[:5]) == [a, b]
    assert framer.buffered == 5
    assert framer.feed(b[5:]) == [b]


def test_command_length_8_is_a_frame_error_without_waiting_for_more() -> None:
    framer = Framer()
    with pytest.raises(FrameError) as info:
        framer.feed(struct.pack(">I", 8))
    assert (info.value.command_length, info.value.sequence_number) == (8, 0)


def test_command_length_over_the_cap_is_a_frame_error_echoing_the_sequence_number() -> None:
    framer = Framer(max_length=1000)
    header = struct.pack(">IIII", 1001, 4, 0, 77)
    assert framer.feed(header[:10]) == []  # waits for the sequence_number
    with pytest.raises(FrameError) as info:
        framer.feed(header[10:])
    assert (info.value.command_length, info.value.sequence_number) == (1001, 77)


def test_frames_before_a_bad_header_are_handed_over_with_the_error() -> None:
    good = encode(p.EnquireLink(5))
    framer = Framer()
    with pytest.raises(FrameError) as info:
        framer.feed(good + struct.pack(">IIII", 4, 0, 0, 0))
    assert info.value.frames == [good]


def test_default_cap_fits_a_64k_message_payload() -> None:
    big = encode(p.DataSm(1, tlvs=((0x0424, b"x" * 65535),)))
    assert Framer().feed(big) == [big]


def test_large_pdu_fed_in_small_chunks_comes_out_whole() -> None:
    big = encode(p.DataSm(1, tlvs=((0x0424, b"x" * 65535),)))
    framer = Framer()
    out: list[bytes] = []
    for i in range(0, len(big), 7):
        out += framer.feed(big[i : i + 7])
    assert out == [big]
