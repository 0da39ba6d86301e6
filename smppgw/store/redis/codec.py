"""Records to and from what Redis keeps: a message as a hash of its columns (as text an operator
reads with HGETALL), a deliver_sm as a stream entry, a batch of ops as one JSON argument of the
commit script, a provider's report as JSON."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

from smppgw.providers.base import StatusReport
from smppgw.store.base import (
    AddEvent,
    AddOutbox,
    InsertMessage,
    MessageRecord,
    Op,
    OutboxRecord,
    ReceiptDone,
    RemoveOutbox,
    ReplaceMessage,
    UpdateMessage,
)

_MSG = [(f.name, str(f.type)) for f in fields(MessageRecord)]
_OUT = [(f.name, str(f.type)) for f in fields(OutboxRecord) if f.name not in ("short_message", "on_row")]
_HEAD = ("key", "message_id", "on_row", "state")  # first in every entry (scripts.py reads them)
_NO_DEFAULT = object()
# The columns that change while a message lives are hash fields of their own (the scripts read
# and write them one by one); the others never change once stored (replace_sm excepted, which
# writes them all again) and travel as one field `d`, a JSON list in _PACKED's order. Redis's
# cost is per field and per byte it parses and appends to its AOF, so this halves both.
MUTABLE = ("state", "provider", "provider_id", "err", "attempts", "done_at", "sent_at", "receipt",
           "receipt_at", "receipt_to")  # fmt: skip
_PACKED = [name for name, _ in _MSG if name not in MUTABLE]
_MUTABLE_DEFAULTS = [
    (f.name, _NO_DEFAULT if f.default is MISSING else f.default)
    for f in fields(MessageRecord)
    if f.name in MUTABLE
]
_KINDS = dict(_MSG)
_ENTRY_PACKED = [name for name, _ in _OUT if name not in _HEAD]


def _text(value: Any) -> str:
    if type(value) is float:
        return repr(value)
    return str(value)


def _parse(kind: str, raw: bytes | None) -> Any:
    if raw is None or (raw == b"" and "None" in kind and not kind.startswith("str")):
        return None  # an optional number the commit script wrote as "" (unset)
    if kind.startswith("int"):
        return int(raw)
    if kind.startswith("float"):
        return float(raw)
    return raw.decode("utf-8", "surrogatepass")


def _opt(value: float | None) -> str | None:
    return None if value is None else repr(value)


# orjson writes the same JSON as json's compact encoder (UTF-8 text as text, floats as repr) in
# a tenth of the time: a message costs the gateway three encodings (its columns, its receipt's
# entry, the ops that carry both), about 8 us of its CPU with json. Text orjson refuses (a lone
# surrogate, which UCS-2 input can carry) goes through json, and to bytes with surrogatepass, as
# everything here did before.
_json_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _json_dumps(value).encode("utf-8", "surrogatepass")


def _dumps(value: Any) -> str:
    return _dumps_bytes(value).decode("utf-8", "surrogatepass")


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # (a lone surrogate, written with surrogatepass)
        return json.loads(raw.decode("utf-8", "surrogatepass"))


# -- messages ---------------------------------------------------------------------------------


_packed_values = attrgetter(*_PACKED)
_mutable_values = attrgetter(*(name for name, _ in _MUTABLE_DEFAULTS))
_MUTABLE_AT_DEFAULT = tuple(default for _, default in _MUTABLE_DEFAULTS)


def packed(record: MessageRecord) -> str:
    """The columns a message keeps from its submit on, as the one field `d`."""
    return _dumps(_packed_values(record))


def message_fields(record: MessageRecord) -> list[str]:
    """The hash fields of a new message: `d`, and each changing column not at its default value
    (no provider id yet, no attempts, …), which is left out and reads back as that default."""
    out = ["d", packed(record)]
    if _mutable_values(record) == _MUTABLE_AT_DEFAULT:
        return out  # a new message as submits make them: nothing else to write
    for name, default in _MUTABLE_DEFAULTS:
        value = getattr(record, name)
        if value is not None and value != default:
            out.append(name)
            out.append(_text(value))
    return out


def message_from_hash(h: dict[bytes, bytes]) -> MessageRecord | None:
    blob = h.get(b"d") if h else None
    if blob is None:
        return _message_from_columns(h)
    values = dict(zip(_PACKED, _loads(blob), strict=True))
    for name in MUTABLE:
        raw = h.get(name.encode())
        kind = _KINDS[name]
        if raw is not None or "None" in kind:
            values[name] = _parse(kind, raw)
    return MessageRecord(**values)


def _message_from_columns(h: dict[bytes, bytes]) -> MessageRecord | None:
    """A message as stores before the packed field wrote it (every column a field)."""
    if not h or b"id" not in h:
        return None
    values = {}
    for name, kind in _MSG:
        raw = h.get(name.encode())
        if raw is not None or "None" in kind:
            values[name] = _parse(kind, raw)
    return MessageRecord(**values)


# -- deliver_sm in a stream ------------------------------------------------------------------


_entry_values = attrgetter(*_ENTRY_PACKED)


def entry_blob(record: OutboxRecord) -> str:
    """A deliver_sm's stream entry is one field, `d`, this JSON list: key, message_id, on_row
    (1/0), state (_HEAD: what the scripts read, in that order), the rest of the
    columns, and last the short_message: "a" and its text when it is ASCII, else "x" and its
    bytes in hex. One field, not five: Redis's cost (and the AOF's bytes) grow with every field
    of every entry, and so does the client's parsing of what it reads."""
    sm = record.short_message
    tail = ["a", sm.decode("ascii")] if sm.isascii() else ["x", sm.hex()]
    head = [record.key, record.message_id, 1 if record.on_row else 0, record.state]
    return _dumps([*head, *_entry_values(record), *tail])


def record_from_entry(f: dict[bytes, bytes]) -> OutboxRecord:
    blob = f.get(b"d")
    if blob is None:
        return _record_from_columns(f)
    if b"key" in f:  # the layout before: the head as fields of their own
        *rest, how, text = _loads(blob)
        head = (f[b"key"].decode(), f[b"message_id"].decode(), f.get(b"on_row") == b"1", int(f[b"state"]))
    else:
        key, message_id, on_row, state, *rest, how, text = _loads(blob)
        head = (key, message_id, on_row == 1, state)
    values: dict[str, Any] = dict(zip(_ENTRY_PACKED, rest, strict=True))
    values.update(zip(_HEAD, head, strict=True))
    values["short_message"] = bytes.fromhex(text) if how == "x" else text.encode("ascii")
    return OutboxRecord(**values)


def _record_from_columns(f: dict[bytes, bytes]) -> OutboxRecord:
    """An entry as stores before the packed field wrote it (every column a field)."""
    values: dict[str, Any] = {}
    for name, kind in _OUT:
        raw = f.get(name.encode())
        if raw is not None or "None" in kind:
            values[name] = _parse(kind, raw)
    hex_sm = f.get(b"short_message_hex")
    values["short_message"] = bytes.fromhex(hex_sm.decode()) if hex_sm else f.get(b"short_message", b"")
    values["on_row"] = f.get(b"on_row") == b"1"
    return OutboxRecord(**values)


# -- reports ----------------------------------------------------------------------------------


def report_json(provider: str, report: StatusReport) -> str:
    return json.dumps(
        {
            "p": provider,
            "id": report.provider_id,
            "s": report.state,
            "w": report.provider_status,
            "e": report.err,
            "d": report.done_at.timestamp() if report.done_at else None,
            "m": report.message_id,
            "to": report.destination,
        },
        separators=(",", ":"),
    )


def report_from_json(raw: bytes | str) -> tuple[str, StatusReport]:
    """(provider, report) from report_json's text."""
    d = json.loads(raw)
    done = datetime.fromtimestamp(d["d"], UTC) if d.get("d") is not None else None
    return d["p"], StatusReport(d["id"], d["s"], d["w"], d["e"], done, d.get("m"), d.get("to"))


# -- a batch of ops -----------------------------------------------------------------------------


def encode_ops(ops: list[Op], now: float, entries: Any) -> tuple[bytes, int]:
    """The commit script's op list as JSON (UTF-8 text stays text), and how many ops it holds.

    In causal order, as the SQLite store applies them: new messages, their updates (one per
    message: an update writes the record's current columns), replaced contents, new deliver_sm,
    removed ones, settled receipts, trail events. `entries` maps a deliver_sm this process holds
    to its stream entry (key -> (account, entry id, partition)), for removals and settled receipts.
    """
    inserts: list[Any] = []
    updates: dict[str, MessageRecord] = {}
    replaces: list[Any] = []
    adds: list[Any] = []
    removes: list[Any] = []
    dones: list[Any] = []
    events: list[Any] = []
    for op in ops:
        kind = type(op)
        if kind is InsertMessage:
            r = op.record  # type: ignore[union-attr]
            r.stored_at = now
            inserts.append(["I", r.id, str(r.state), message_fields(r)])
        elif kind is UpdateMessage:
            updates[op.record.id] = op.record  # type: ignore[union-attr]
        elif kind is AddOutbox:
            o = op.record  # type: ignore[union-attr]
            adds.append(["A", o.account, o.key, o.message_id, "1" if o.on_row else "0", entry_blob(o)])
        elif kind is RemoveOutbox:
            held = entries.pop(op.key, None)  # type: ignore[union-attr]
            if held is not None:
                removes.append(["X", held[0], held[1]])
        elif kind is ReceiptDone:
            d: Any = op
            held = entries.pop(f"{d.message_id}/final", None)
            account, entry = held[:2] if held is not None else ("", "")
            dones.append(["D", d.message_id, str(d.receipt), repr(d.at), d.to, account, entry])
        elif kind is AddEvent:
            e: Any = op
            detail = {"at": e.event.at, "event": e.event.event, "detail": e.event.detail}
            events.append(["E", e.message_id, json.dumps(detail, default=str)])
        elif kind is ReplaceMessage:
            r = op.record  # type: ignore[union-attr]
            replaces.append(["R", r.id, packed(r)])
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown store op {op!r}")
    out = inserts
    for r in updates.values():
        out.append(
            [
                "U",
                r.id,
                str(r.state),
                r.provider,
                r.provider_id,
                r.err,
                str(r.attempts),
                _opt(r.done_at),
                _opt(r.sent_at),
                str(r.receipt),
            ]
        )
    out += replaces + adds + removes + dones + events
    return _dumps_bytes(out), len(out)
