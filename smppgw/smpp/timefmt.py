"""SMPP time strings (§7.1.1, smpp34.md §1.10): absolute `YYMMDDhhmmsstnnp` with a
quarter-hour UTC offset, relative `YYMMDDhhmmss000R`, and the short `YYMMDDhhmmss` form.

All datetimes returned are aware and in UTC; naive inputs are taken to be UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta


def _year(yy: int) -> int:
    # Two-digit years: 38-99 are 19xx, 00-37 are 20xx (Appendix C).
    return 1900 + yy if yy >= 38 else 2000 + yy


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + dt.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


def parse_smpp_time(value: str, now: datetime) -> datetime | None:
    """The moment an SMPP time field names, in UTC; None for "" (not set).

    Relative times count from `now`. Raises ValueError for anything that is not a valid
    16-character time (the caller answers ESME_RINVSCHED / ESME_RINVEXPIRY).
    """
    if value == "":
        return None
    if len(value) != 16 or not value[:15].isdigit() or not value[:15].isascii():
        raise ValueError(f"SMPP time must be 15 digits and a sign, not {value!r}")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths = int(value[12])
    quarters = int(value[13:15])
    sign = value[15]
    if sign == "R":
        # Relative: each field is an amount, not a calendar value (t and nn are meaningless).
        base = _add_months(_utc(now), yy * 12 + mo)
        return base + timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
    if sign not in "+-":
        raise ValueError(f"SMPP time must end in '+', '-' or 'R', not {sign!r}")
    if quarters > 48:
        raise ValueError(f"UTC offset of {quarters} quarter hours (max 48)")
    local = datetime(_year(yy), mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=UTC)
    offset = timedelta(minutes=15 * quarters)
    # The fields are local time `offset` ahead of (+) or behind (-) UTC.
    return local - offset if sign == "+" else local + offset


def format_smpp_time(dt: datetime) -> str:
    """Absolute SMPP time in UTC, to the second: `YYMMDDhhmmss000+`."""
    dt = _utc(dt)
    if not 1938 <= dt.year <= 2037:
        raise ValueError(f"year {dt.year} has no two-digit SMPP form")
    return dt.strftime("%y%m%d%H%M%S") + "000+"


def format_relative(delta: timedelta) -> str:
    """Relative SMPP time `000DDhhmmss000R` for a non-negative delta of under 100 days."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    if seconds < 0 or days > 99:
        raise ValueError(f"relative time {delta} out of range")
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def format_short(dt: datetime) -> str:
    """`YYMMDDhhmmss` in UTC, as SMSCs report their own times."""
    return _utc(dt).strftime("%y%m%d%H%M%S")
