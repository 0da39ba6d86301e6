"""SMPP time strings (smpp34.md §1.10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from smppgw.smpp.timefmt import format_relative, format_short, format_smpp_time, parse_smpp_time

NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)


def test_empty_time_means_not_set() -> None:
    assert parse_smpp_time("", NOW) is None


def test_absolute_time_in_utc() -> None:
    assert parse_smpp_time("250315101530200+", NOW) == datetime(2025, 3, 15, 10, 15, 30, 200_000, tzinfo=UTC)


def test_absolute_time_with_positive_quarter_hour_offset_is_converted_to_utc() -> None:
    # 12:00 at UTC+05:45 (23 quarter hours) is 06:15 UTC.
    assert parse_smpp_time("250315120000023+", NOW) == datetime(2025, 3, 15, 6, 15, tzinfo=UTC)


def test_absolute_time_with_negative_offset_is_converted_to_utc() -> None:
    assert parse_smpp_time("251231220000020-", NOW) == datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def test_two_digit_years_pivot_at_38() -> None:
    assert parse_smpp_time("380101000000000+", NOW).year == 1938  # type: ignore[union-attr]
    assert parse_smpp_time("371231000000000+", NOW).year == 2037  # type: ignore[union-attr]


def test_relative_time_is_added_to_now() -> None:
    # The spec's own example: 2 years, 6 months, 10 days, 23:34:29 from now.
    got = parse_smpp_time("020610233429000R", NOW)
    assert got == datetime(2027, 7, 31, 12, 0, tzinfo=UTC) + timedelta(
        days=10, hours=23, minutes=34, seconds=29
    )


def test_relative_months_clamp_to_the_end_of_the_month() -> None:
    assert parse_smpp_time("000100000000000R", NOW) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)


def test_naive_now_is_taken_as_utc() -> None:
    assert parse_smpp_time("000000010000000R", NOW.replace(tzinfo=None)) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "value",
    ["2503151015302", "250315101530200*", "251315101530200+", "250315101530249+", "25031510153a200+",
     "250230101530200+", "250315241530200+", "25031510153020+ ", "２50315101530200+"],
)  # fmt: skip
def test_malformed_times_are_value_errors(value: str) -> None:
    with pytest.raises(ValueError):
        parse_smpp_time(value, NOW)


def test_format_is_absolute_utc_to_the_second() -> None:
    dt = datetime(2025, 3, 15, 12, 15, 30, 700_000, tzinfo=timezone(timedelta(hours=2)))
    assert format_smpp_time(dt) == "250315101530000+"
    assert parse_smpp_time(format_smpp_time(dt), NOW) == dt.replace(microsecond=0)
    with pytest.raises(ValueError):
        format_smpp_time(datetime(2040, 1, 1, tzinfo=UTC))


def test_format_short_and_relative() -> None:
    assert format_short(datetime(2025, 3, 15, 10, 15, 30, tzinfo=UTC)) == "250315101530"
    assert format_relative(timedelta(days=2, hours=3, minutes=4, seconds=5)) == "000002030405000R"
    assert parse_smpp_time(format_relative(timedelta(hours=5)), NOW) == NOW + timedelta(hours=5)
