"""Records to and from what Redis keeps: a message as a hash of its columns (as text an operator
reads with HGETALL), a deliver_sm as a stream entry, a batch of ops as the commit script's
arguments, a provider's report as JSON."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

from smppgw.providers.base import StatusReport
from smppgw.store.base import (
    RECEIPT_OWED,
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
# A message's hash, for the scripts to read and write as few fields and bytes as they can (Redis's
# cost is per field and per byte it parses and appends to its AOF):
#   d      the columns that never change once stored (replace_sm excepted, which writes them all
#          again), a JSON list in _PACKED's order, and last its provider as it was then: the one
#          to read while it has no `s` (a message as submits make it: routed, not sent yet)
#   state  its message_state, a field of its own (the scripts and report routing read it)
#   s      the other columns that change while it is sent, a JSON list in _SENT's order; left out
#          while all but its provider are at their defaults (a new message)
#   pid    "<provider>:<provider id>" while it waits for a report by that id (the scripts keep the
#          pid: index by it)
#   r      its final receipt: "1" while owed, then a JSON list [receipt, receipt_at, receipt_to];
#          left out when none is owed
#   node   the process that owns it (scripts.py)
# Hashes of the layout before (each changing column a field of its own) still read.
_SENT = ("provider", "provider_id", "err", "attempts", "done_at", "sent_at")
_RECEIPT = ("receipt", "receipt_at", "receipt_to")
MUTABLE = ("state", *_SENT, *_RECEIPT)
_PACKED = [name for name, _ in _MSG if name not in MUTABLE]
_DEFAULTS = {f.name: f.default for f in fields(MessageRecord)}
_SENT_DEFAULTS = tuple(_DEFAULTS[name] for name in _SENT)
UNSENT = _SENT_DEFAULTS[1:]  # what `s` holds but the provider while a message is not sent yet
PACKED_LEN = len(_PACKED)  # `d`'s columns; one more, its provider at the write (scripts.py)
_KINDS = dict(_MSG)
_ENTRY_PACKED = [name for name, _ in _OUT if name not in _HEAD]


def _parse(kind: str, raw: bytes | None) -> Any:
    if raw is None or (raw == b"" and "None" in kind and not kind.startswith("str")):
        return None  # an optional number the commit script wrote as "" (unset)
    if kind.startswith("int"):
        return int(raw)
    if kind.startswith("float"):
        return float(raw)
    return raw.decode("utf-8", "surrogatepass")


# orjson writes the same JSON as json's compact encoder (UTF-8 text as text, floats as repr) in
# a tenth of the time: a message costs the gateway a few encodings (its columns, what its
# sending changed, its receipt's entry or settling), several us of its CPU with json. Text
# orjson refuses (a lone surrogate, which UCS-2 input can carry) goes through json, and to
# bytes with surrogatepass, as everything here did before.
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
_sent_values = attrgetter(*_SENT)


def packed(record: MessageRecord) -> str:
    """The columns a message keeps from its submit on, and its provider now, as the one field
    `d`."""
    return _dumps((*_packed_values(record), record.provider))


def sent_blob(record: MessageRecord) -> str:
    """The field `s`: the columns its sending changes, but its state."""
    return _dumps(_sent_values(record))


def pid_field(record: MessageRecord) -> str:
    """The field `pid` (the suffix of its pid: key), "" while it has no provider id."""
    return f"{record.provider}:{record.provider_id}" if record.provider_id and record.provider else ""


def receipt_blob(receipt: int, at: float | None, to: str) -> str:
    """The field `r` once the receipt is owed ("1") or settled (a JSON list)."""
    return "1" if receipt == RECEIPT_OWED else _dumps([receipt, at, to])


def message_fields(record: MessageRecord) -> list[str]:
    """The hash fields of a new message: `d` (with its provider), and the others only where
    they are not at their default (a new message as submits make them has none)."""
    out = ["d", packed(record)]
    if record.state:
        out += ["state", str(record.state)]
    sent = _sent_values(record)
    if sent[1:] != UNSENT:
        out += ["s", _dumps(sent)]
        pid = pid_field(record)
        if pid:
            out += ["pid", pid]
    if record.receipt:
        out += ["r", receipt_blob(record.receipt, record.receipt_at, record.receipt_to)]
    return out


def message_from_hash(h: dict[bytes, bytes]) -> MessageRecord | None:
    blob = h.get(b"d") if h else None
    if blob is None:
        return _message_from_columns(h)
    columns = _loads(blob)
    if len(columns) not in (PACKED_LEN, PACKED_LEN + 1):  # (+1: its provider; none before)
        raise ValueError(f"a message's d has {len(columns)} columns, not {PACKED_LEN} or one more")
    values = dict(zip(_PACKED, columns[:PACKED_LEN], strict=True))
    if len(columns) > PACKED_LEN:
        values["provider"] = columns[PACKED_LEN]
    for name in MUTABLE:  # as fields of their own: the layout before `s` and `r`
        raw = h.get(name.encode())
        if raw is not None:
            values[name] = _parse(_KINDS[name], raw)
    sent = h.get(b"s")
    if sent is not None:
        values.update(zip(_SENT, _loads(sent), strict=True))
    r = h.get(b"r")
    if r is not None:
        values.update(zip(_RECEIPT, (RECEIPT_OWED, None, "") if r == b"1" else _loads(r), strict=True))
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


def encode_ops(
    ops: list[Op],
    now: float,
    entries: Any,
    rooms: dict[str, int] | None = None,
    indexed: set[str] | None = None,
) -> tuple[list[Any], int, list[OutboxRecord]]:
    """The commit script's ops as its arguments, flat (commit_script.py reads them), how many
    ops they hold, and the deliver_sm they add in the order the script meets them (it names one
    by its place there). First how many final states there are and their 6 values each (id,
    state, pid, s, receipt, done_at: they never share a batch with their message's insert nor
    with its receipt's settling, and the script reads their ids before the rest), then every
    other op as its letter and its values:
      I id state n <n hash fields and values>   i id d (a new message with only `d`)
      U id state pid s                          R id d
      A account message_id entry                a account key entry
      X account entry                           E message_id event
      D message_id r account entry              d message_id r (no stream entry)
    A final state's receipt is "1" (owed: its A op follows, if the batch has it), "+<account>"
    (owed to a receiver of this process, sent without its entry: an A op with no entry, folded
    into its final state), or another number (none owed).
    Arguments of their own, not one JSON list: decoding JSON was a fifth of what a message cost
    redis-server (about 140 ns per token, and the JSON inside JSON escaped twice); and as few of
    them as a message needs (12 for its insert, final state and settle), for each costs both
    sides (hiredis packs one in about 180 ns, Redis makes a Lua string of it).

    After the final states, in causal order, as the SQLite store applies them: new messages,
    the updates before a final state (one per message: an update writes the record's current
    columns), replaced contents, new deliver_sm, removed ones, settled receipts, trail events.
    `entries` maps a deliver_sm this process holds to its stream entry (key -> (account, entry
    id, partition)), for removals and settled receipts.
    `rooms`: how many deliver_sm this process's receivers take now, per account (used up as the
    batch's final receipts take it): a final receipt that the script will most likely hand to
    one of them goes without its entry (scripts.py; the process has the record). `indexed`: the
    ids of the messages whose pid: key an update may have written (an update before the final
    state with a provider id); their final state deletes it, the others' do not look.
    """
    rest: list[Any] = []  # inserts, then the updates before a final state
    updates: dict[str, MessageRecord] = {}
    replaces: list[Any] = []
    adds: list[Any] = []
    added: list[OutboxRecord] = []
    here: dict[str, OutboxRecord] = {}  # message id -> its final receipt, sent without its entry
    removes: list[Any] = []
    dones: list[Any] = []
    events: list[Any] = []
    count = len(ops)
    for op in ops:
        kind = type(op)
        if kind is InsertMessage:
            r = op.record  # type: ignore[union-attr]
            r.stored_at = now
            columns = message_fields(r)
            if len(columns) == 2 and not r.state:
                rest += ("i", r.id, columns[1])
            else:
                rest += ("I", r.id, str(r.state), len(columns), *columns)
        elif kind is UpdateMessage:
            updates[op.record.id] = op.record  # type: ignore[union-attr]
            count -= 1  # (one per record, below)
        elif kind is AddOutbox:
            o = op.record  # type: ignore[union-attr]
            if o.on_row:  # added with its message's final state (the script knows it by its id)
                if rooms and rooms.get(o.account, 0) > 0:
                    rooms[o.account] -= 1
                    here[o.message_id] = o
                    continue
                adds += ("A", o.account, o.message_id, entry_blob(o))
            else:  # added once by its key
                adds += ("a", o.account, o.key, entry_blob(o))
            added.append(o)
        elif kind is RemoveOutbox:
            held = entries.pop(op.key, None)  # type: ignore[union-attr]
            if held is not None:
                removes += ("X", held[0], held[1])
            else:
                count -= 1
        elif kind is ReceiptDone:
            d: Any = op
            held = entries.pop(f"{d.message_id}/final", None)
            r_blob = receipt_blob(d.receipt, d.at, d.to)
            if held is None or not held[1]:  # (owed here without an entry, or not known)
                dones += ("d", d.message_id, r_blob)
            else:
                dones += ("D", d.message_id, r_blob, held[0], held[1])
        elif kind is AddEvent:
            e: Any = op
            detail = {"at": e.event.at, "event": e.event.event, "detail": e.event.detail}
            events += ("E", e.message_id, json.dumps(detail, default=str))
        elif kind is ReplaceMessage:
            r = op.record  # type: ignore[union-attr]
            replaces += ("R", r.id, packed(r))
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown store op {op!r}")
    out: list[Any] = [0]
    first: list[OutboxRecord] = []  # the receipts folded into their final states, in order
    count += len(updates)
    for r in updates.values():
        if r.state < 2:
            pid = pid_field(r)
            if pid and indexed is not None:
                indexed.add(r.id)
            rest += ("U", r.id, str(r.state), pid, sent_blob(r))
            continue
        done_at = repr(r.done_at) if r.done_at is not None else ""
        pid = pid_field(r) if indexed is None or r.id in indexed else ""  # (its pid: index goes)
        if indexed is not None:
            indexed.discard(r.id)
        receipt = str(r.receipt)
        o = here.pop(r.id, None) if r.receipt == RECEIPT_OWED else None
        if o is not None:
            receipt = "+" + o.account
            first.append(o)
        out += (r.id, str(r.state), pid, sent_blob(r), receipt, done_at)
    out[0] = (len(out) - 1) // 6
    for o in here.values():  # (its final state not in this batch: an A op without its entry)
        adds += ("A", o.account, o.message_id, "")
        added.append(o)
    out += rest
    out += replaces
    out += adds
    out += removes
    out += dones
    out += events
    return out, count, first + added
