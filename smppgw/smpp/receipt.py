"""Delivery receipt text (SMPP 3.4 Appendix B, smpp34.md §1.9): writing ours in the one form
every client parses, and reading the many forms SMSCs send.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from .constants import MessageState


@dataclass(frozen=True, slots=True)
class Receipt:
    id: str
    sub: int
    dlvrd: int
    submit_date: datetime
    done_date: datetime
    stat: str
    err: str
    text: str


STAT_BY_STATE: dict[int, str] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
STATE_BY_STAT: dict[str, int] = {stat: state for state, stat in STAT_BY_STATE.items()}

_TEXT_LEN = 20


def _date(dt: datetime) -> str:
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    # by hand: strftime costs several times more, once per receipt date
    return f"{dt.year % 100:02d}{dt.month:02d}{dt.day:02d}{dt.hour:02d}{dt.minute:02d}"


_UNPRINTABLE = re.compile(r"[^ -~]")


def _printable_ascii(text: str) -> str:
    # The receipt goes out as data_coding 0 ASCII; anything else would decode as garbage, and a
    # control character (a newline) can break clients that parse the text line-wise.
    return text if text.isascii() and text.isprintable() else _UNPRINTABLE.sub("?", text)


def format_receipt(r: Receipt) -> bytes:
    """`id:… sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:… err:000 text:…`.

    Dates in UTC, text cut to 20 characters and made printable ASCII. Raises ValueError for
    fields that cannot be written in this form.
    """
    return _compose(r.id, r.sub, r.dlvrd, _date(r.submit_date), _date(r.done_date), r.stat, r.err, r.text)


def receipt_text(
    message_id: str, sub: int, dlvrd: int, submitted: float, done: float, stat: str, err: str, text: str
) -> bytes:
    """`format_receipt` for times given as epoch seconds: the form the gateway writes once per
    receipt, without a datetime or a Receipt on the way (dates are cached per minute)."""
    return _compose(
        message_id, sub, dlvrd, _minute(int(submitted // 60)), _minute(int(done // 60)), stat, err, text
    )


@lru_cache(maxsize=256)
def _minute(minute: int) -> str:
    """YYMMDDhhmm of a minute since the epoch (UTC); receipts of one minute share it."""
    t = time.gmtime(minute * 60)
    return f"{t.tm_year % 100:02d}{t.tm_mon:02d}{t.tm_mday:02d}{t.tm_hour:02d}{t.tm_min:02d}"


def _compose(
    message_id: str, sub: int, dlvrd: int, submit_date: str, done_date: str, stat: str, err: str, text: str
) -> bytes:
    # The common case (our own ids and err codes) is checked with two cheap calls each; anything
    # else gets the full check.
    if not (message_id.isascii() and message_id.isalnum()):
        if not message_id or any(ch.isspace() for ch in message_id) or not message_id.isascii():
            raise ValueError(f"receipt id {message_id!r} must be non-empty ASCII without spaces")
    if not (0 <= sub <= 999 and 0 <= dlvrd <= 999):
        raise ValueError(f"sub {sub} / dlvrd {dlvrd} do not fit 3 digits")
    if not (len(err) == 3 and err.isascii() and err.isalnum()):
        padded = err.zfill(3) if err.isdigit() else err
        if len(padded) != 3 or not padded.isascii() or not padded.isalnum():
            raise ValueError(f"err {err!r} must be 3 characters")
        err = padded
    if stat not in STATE_BY_STAT and (not stat.isascii() or not stat.isalnum()):
        raise ValueError(f"stat {stat!r}")
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} submit date:{submit_date} "
        f"done date:{done_date} stat:{stat} err:{err} text:{_printable_ascii(text[:_TEXT_LEN])}"
    ).encode("ascii")


_RECEIPT = re.compile(
    r"id:\s*(?P<id>\S+)\s+"
    r"sub:\s*(?P<sub>\d+)\s+"
    r"dlvrd:\s*(?P<dlvrd>\d+)\s+"
    r"submit[ _]date:\s*(?P<submit>\d+)\s+"
    r"done[ _]date:\s*(?P<done>\d+)\s+"
    r"stat:\s*(?P<stat>\S+)\s+"
    r"err:\s*(?P<err>\S+)"
    r"(?:\s+text:(?P<text>.*))?",
    re.IGNORECASE | re.DOTALL,
)


def _parse_date(digits: str) -> datetime:
    # 10 = YYMMDDhhmm (Appendix B), 12 = YYMMDDhhmmss, 14 = YYYYMMDDhhmmss (cloudhopper accepts all).
    if len(digits) == 14:
        return datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    if len(digits) not in (10, 12):
        raise ValueError(f"receipt date {digits!r} is not 10, 12 or 14 digits")
    yy = int(digits[:2])
    year = 1900 + yy if yy >= 38 else 2000 + yy
    rest = digits[2:] + "00" * ((12 - len(digits)) // 2)
    return datetime.strptime(f"{year}{rest}", "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def parse_receipt(data: bytes) -> Receipt:
    """Read receipt text; tolerant of case, `Text:`/`text:`, extra spaces and 10/12/14-digit dates.

    Raises ValueError when `data` is not a receipt.
    """
    text = data.decode("latin-1").rstrip("\0")
    match = _RECEIPT.search(text)
    if match is None:
        raise ValueError("not a delivery receipt")
    return Receipt(
        id=match["id"],
        sub=int(match["sub"]),
        dlvrd=int(match["dlvrd"]),
        submit_date=_parse_date(match["submit"]),
        done_date=_parse_date(match["done"]),
        stat=match["stat"].upper(),
        err=match["err"],
        text=match["text"] or "",
    )
