"""Delivery receipt text (smpp34.md §1.9)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.smpp.constants import MessageState
from smppgw.smpp.receipt import (
    STAT_BY_STATE,
    STATE_BY_STAT,
    Receipt,
    format_receipt,
    parse_receipt,
    receipt_text,
)

RECEIPT_RE = re.compile(
    r"^id:(\S+) sub:(\d{3}) dlvrd:(\d{3}) submit date:(\d{10}) done date:(\d{10}) "
    r"stat:(\w+) err:(\w{3}) text:"
)
SUBMIT = datetime(2025, 3, 15, 10, 15, tzinfo=UTC)
DONE = datetime(2025, 3, 15, 10, 16, tzinfo=UTC)


def receipt(**changes: object) -> Receipt:
    fields: dict[str, object] = {
        "id": "0000000042", "sub": 1, "dlvrd": 1, "submit_date": SUBMIT, "done_date": DONE,
        "stat": "DELIVRD", "err": "000", "text": "Hello world",
    }  # fmt: skip
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]


def test_receipt_text_is_exactly_the_appendix_b_form_with_lowercase_text() -> None:
    data = format_receipt(receipt())
    assert data == (
        b"id:0000000042 sub:001 dlvrd:001 submit date:2503151015 done date:2503151016 "
        b"stat:DELIVRD err:000 text:Hello world"
    )
    match = RECEIPT_RE.match(data.decode("ascii"))
    assert match is not None and match.groups() == (
        "0000000042", "001", "001", "2503151015", "2503151016", "DELIVRD", "000",
    )  # fmt: skip


def test_text_is_cut_to_20_chars_and_made_ascii() -> None:
    data = format_receipt(receipt(text="Привет, this is a long message"))
    assert data.endswith(b"text:??????, this is a lo")
    assert format_receipt(receipt(text="a\nb")).endswith(b"text:a?b")


def test_err_is_zero_padded_to_three_and_dates_are_utc() -> None:
    local = SUBMIT.astimezone(timezone(timedelta(hours=3)))
    data = format_receipt(receipt(err="5", submit_date=local, stat="UNDELIV", sub=0, dlvrd=0))
    assert RECEIPT_RE.match(data.decode())
    assert b"err:005" in data and b"submit date:2503151015" in data and b"sub:000 dlvrd:000" in data


@pytest.mark.parametrize(
    "changes", [{"err": "1234"}, {"sub": 1000}, {"id": "a b"}, {"id": ""}, {"err": "a b"}]
)
def test_unwritable_receipts_are_value_errors(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        format_receipt(receipt(**changes))


@given(
    submitted=st.floats(0, 4e9),
    later=st.floats(0, 1e7),
    err=st.sampled_from(["000", "5", "0AB", "12"]),
    text=st.text(max_size=30),
)
def test_receipt_text_from_epoch_seconds_is_format_receipt(
    submitted: float, later: float, err: str, text: str
) -> None:
    done = submitted + later
    expected = format_receipt(
        receipt(
            submit_date=datetime.fromtimestamp(submitted, UTC),
            done_date=datetime.fromtimestamp(done, UTC),
            err=err,
            text=text,
        )
    )
    assert receipt_text("0000000042", 1, 1, submitted, done, "DELIVRD", err, text) == expected


@pytest.mark.parametrize(
    "changes", [{"err": "1234"}, {"message_id": "a b"}, {"message_id": ""}, {"err": "a b"}]
)
def test_receipt_text_refuses_what_format_receipt_refuses(changes: dict[str, str]) -> None:
    fields = {"message_id": "0000000042", "err": "000"} | changes
    with pytest.raises(ValueError):
        receipt_text(fields["message_id"], 1, 1, 0.0, 60.0, "DELIVRD", fields["err"], "")


def test_parse_reads_back_what_format_writes() -> None:
    assert parse_receipt(format_receipt(receipt())) == receipt()


@pytest.mark.parametrize(
    ("submit", "done", "expected_submit"),
    [
        ("2503151015", "2503151016", datetime(2025, 3, 15, 10, 15, tzinfo=UTC)),
        ("250315101530", "250315101645", datetime(2025, 3, 15, 10, 15, 30, tzinfo=UTC)),
        ("20250315101530", "20250315101645", datetime(2025, 3, 15, 10, 15, 30, tzinfo=UTC)),
    ],
    ids=["10", "12", "14"],
)
def test_parse_accepts_10_12_and_14_digit_dates(submit: str, done: str, expected_submit: datetime) -> None:
    data = (
        f"id:abc sub:001 dlvrd:001 submit date:{submit} done date:{done} stat:DELIVRD err:000 text:x".encode()
    )
    got = parse_receipt(data)
    assert got.submit_date == expected_submit
    assert got.done_date > got.submit_date


def test_parse_tolerates_capital_text_case_and_trailing_nul() -> None:
    data = (
        b"ID:7f3a SUB:001 DLVRD:000 Submit Date:2503151015 Done Date:2503151016 "
        b"Stat:undeliv Err:0AB Text:hi\0"
    )
    got = parse_receipt(data)
    assert (got.id, got.dlvrd, got.stat, got.err, got.text) == ("7f3a", 0, "UNDELIV", "0AB", "hi")


def test_parse_without_text_field() -> None:
    data = b"id:1 sub:001 dlvrd:001 submit date:2503151015 done date:2503151016 stat:DELIVRD err:000"
    assert parse_receipt(data).text == ""


@pytest.mark.parametrize(
    "data",
    [
        b"hello world",
        b"id:1 stat:DELIVRD",
        b"id:1 sub:001 dlvrd:001 submit date:25031510 done date:2503151016 stat:DELIVRD err:000",
        b"id:1 sub:001 dlvrd:001 submit date:2513151015 done date:2503151016 stat:X err:0",
    ],
    ids=["prose", "fields_missing", "8_digit_date", "month_13"],
)
def test_non_receipts_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_receipt(data)


def test_stat_names_map_to_message_states_both_ways() -> None:
    assert STAT_BY_STATE == {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                             6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}  # fmt: skip
    assert STATE_BY_STAT["DELIVRD"] == MessageState.DELIVERED
    assert all(STATE_BY_STAT[stat] == state for state, stat in STAT_BY_STATE.items())
