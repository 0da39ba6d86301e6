"""SQLite store: one writer thread, group commit, WAL.

Every `write` call is queued; the writer thread takes everything queued (up to max_batch
ops), runs it in one transaction and commits once, then hands all the callbacks of that
batch back to the event loop in one call. While one commit runs the next batch gathers, so
the commit rate adapts to the load without a timer.

durability "normal" is WAL with synchronous=NORMAL: a commit is in the OS once `done` runs,
so it survives kill -9 of the gateway; "fsync" (synchronous=FULL) survives power loss too.

A message's final receipt lives on its own row (`receipt` owed → delivered / refused /
dropped), so a message costs one insert and a few updates of that row; the outbox table holds
only the other deliver_sm (intermediate receipts, MO). Steps of a message's trail that its row
does not record go to `events`. The file carries its schema version (PRAGMA user_version) and
a newer gateway migrates an older file when it opens it.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

from smppgw.providers.base import StatusReport
from smppgw.store.base import (
    RECEIPT_OWED,
    AddEvent,
    AddOutbox,
    Bucket,
    Done,
    InsertMessage,
    MessageRecord,
    Op,
    OutboxRecord,
    ReceiptDone,
    RemoveOutbox,
    ReplaceMessage,
    Slots,
    Snapshot,
    StoreSink,
    TrailDone,
    TrailEvent,
    UpdateMessage,
)
from smppgw.tokens import TokenBucket

log = logging.getLogger("smppgw.store")

# sqlite3 binds int, float, str and bytearray as they are, but sends every other value (None,
# bytes) through its adapter protocol first; with no adapter registered that raises and clears
# two AttributeErrors per parameter, messages formatted and all: about a microsecond per
# inserted row, whose optional columns are mostly NULL. Adapters that give the value back make
# it one dict hit. They are process-wide and change nothing else: None binds as NULL and bytes
# as a BLOB, as before.
sqlite3.register_adapter(type(None), {}.get)  # {}.get(None) is None: a C call
sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b for a bytes object

FINAL_MIN = 2  # message_state values >= 2 are final
HELD_RETRY = 1.0  # seconds between tries of a commit the disk refused (full, read-only, I/O error)
FAILED_LOG_EVERY = 30.0  # seconds between error lines while it keeps refusing
SCHEMA_VERSION = 2  # 1: the first format (no user_version, receipts in the outbox table)

_MSG_COLS = [f.name for f in fields(MessageRecord)]
_OUT_COLS = [f.name for f in fields(OutboxRecord) if f.name != "on_row"]
_msg_row = attrgetter(*_MSG_COLS)
_out_row = attrgetter(*_OUT_COLS)

_MESSAGES_V1 = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    source TEXT NOT NULL, source_ton INTEGER NOT NULL, source_npi INTEGER NOT NULL,
    destination TEXT NOT NULL, dest_ton INTEGER NOT NULL, dest_npi INTEGER NOT NULL,
    text TEXT NOT NULL,
    data_coding INTEGER NOT NULL, esm_class INTEGER NOT NULL, registered_delivery INTEGER NOT NULL,
    submitted_at REAL NOT NULL,
    state INTEGER NOT NULL,
    provider TEXT NOT NULL, provider_id TEXT NOT NULL,
    err TEXT NOT NULL, attempts INTEGER NOT NULL,
    done_at REAL, user_message_reference INTEGER, schedule_at REAL, valid_until REAL
);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    account TEXT NOT NULL, message_id TEXT NOT NULL, state INTEGER NOT NULL,
    source_addr TEXT NOT NULL, source_ton INTEGER NOT NULL, source_npi INTEGER NOT NULL,
    dest_addr TEXT NOT NULL, dest_ton INTEGER NOT NULL, dest_npi INTEGER NOT NULL,
    esm_class INTEGER NOT NULL, data_coding INTEGER NOT NULL, short_message BLOB NOT NULL,
    created_at REAL NOT NULL, user_message_reference INTEGER, network_error INTEGER
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Schema 1 -> 2: the final receipt and the trail's milestones on the message row, trail events,
# one partial index for everything a start must load (unfinished, or a receipt still owed).
_MIGRATE_TO_2 = """
ALTER TABLE messages ADD COLUMN sent_at REAL;
ALTER TABLE messages ADD COLUMN receipt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN receipt_at REAL;
ALTER TABLE messages ADD COLUMN receipt_to TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN stored_at REAL;
DROP INDEX IF EXISTS messages_unfinished;
CREATE INDEX messages_open ON messages(state) WHERE state < 2 OR receipt = 1;
CREATE TABLE events (message_id TEXT NOT NULL, at REAL NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX events_message ON events(message_id);
"""

_INSERT_MSG = f"INSERT INTO messages ({', '.join(_MSG_COLS)}) VALUES ({', '.join('?' * len(_MSG_COLS))})"
_UPDATE_MSG = (
    "UPDATE messages SET state=?, provider=?, provider_id=?, err=?, attempts=?, done_at=?, sent_at=?,"
    " receipt=? WHERE id=?"
)
_update_row = attrgetter(
    "state", "provider", "provider_id", "err", "attempts", "done_at", "sent_at", "receipt", "id"
)
_REPLACE_MSG = (
    "UPDATE messages SET text=?, data_coding=?, registered_delivery=?, schedule_at=?, valid_until=?"
    " WHERE id=?"
)
_RECEIPT_DONE = "UPDATE messages SET receipt=?, receipt_at=?, receipt_to=? WHERE id=?"
_INSERT_OUT = (
    f"INSERT OR IGNORE INTO outbox ({', '.join(_OUT_COLS)}) VALUES ({', '.join('?' * len(_OUT_COLS))})"
)
_DELETE_OUT = "DELETE FROM outbox WHERE key=?"
_INSERT_EVENT = "INSERT INTO events (message_id, at, event, detail) VALUES (?, ?, ?, ?)"
_HIGH_ID = (
    "INSERT INTO meta(key, value) VALUES('high_id', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
)
_SELECT_MSG = f"SELECT {', '.join(_MSG_COLS)} FROM messages"

# Many rows per statement: SQLite spends about a fifth less CPU per row than on executemany's
# one step per row, and sqlite3, which lets go of the GIL around every step, takes it back once
# per 64 rows instead of once per row. UPDATE … FROM needs SQLite 3.33; older libraries keep
# executemany.
_CHUNKS = (64, 8)  # rows per statement; what is left after the largest chunks goes in smaller ones
_MULTI_ROW = sqlite3.sqlite_version_info >= (3, 33)


def _values(width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * rows)


def _update_from(assignments: str, width: int, rows: int) -> str:
    """UPDATE messages from a VALUES list whose last column is the id (ids distinct)."""
    return (
        f"UPDATE messages SET {assignments} FROM (VALUES {_values(width, rows)}) AS v"
        f" WHERE messages.id = v.column{width}"
    )


_UPDATE_SET = ", ".join(
    f"{col}=v.column{i}"
    for i, col in enumerate(
        ("state", "provider", "provider_id", "err", "attempts", "done_at", "sent_at", "receipt"), 1
    )
)
_RECEIPT_SET = "receipt=v.column1, receipt_at=v.column2, receipt_to=v.column3"
_INSERT_MANY = {
    n: f"INSERT INTO messages ({', '.join(_MSG_COLS)}) VALUES {_values(len(_MSG_COLS), n)}" for n in _CHUNKS
}
_UPDATE_MANY = {n: _update_from(_UPDATE_SET, 9, n) for n in _CHUNKS}
_RECEIPT_DONE_MANY = {n: _update_from(_RECEIPT_SET, 4, n) for n in _CHUNKS}


class SchemaError(Exception):
    """The store file was written by a newer gateway (or is not a store at all)."""


_STOP = object()


class SqliteStore:
    shared = False  # one process: what the seam shares between processes is all local here

    def __init__(
        self,
        path: str | Path,
        call_in_loop: Callable[..., Any],
        *,
        durability: str = "normal",
        max_batch: int = 2000,
    ) -> None:
        self.path = Path(path)
        self._call_in_loop = call_in_loop
        self._durability = durability
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None  # the last commit's error, until one succeeds
        # State changes of a failed commit (disk full, read-only, I/O error), kept in order with
        # their callbacks and committed again until the disk takes them: nothing acked is lost.
        # New messages of a failed commit are refused instead (their ESME sends them again).
        self._held: list[tuple[Sequence[Op], Done, int]] = []
        self.failed_commits = 0  # for the metrics
        self._failed_logged = 0.0
        self._delivered: list[OutboxRecord] = []
        self._purge_from = 0  # rowid the next purge scan starts after
        self.batches = 0  # commits made, for tests and metrics
        self.ops_written = 0
        self.purged = 0  # final messages removed after keep_final
        self._sink: StoreSink | None = None

    # -- start and stop -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=" + ("FULL" if self._durability == "fsync" else "NORMAL"))
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def open(self) -> Snapshot:
        conn = self._connect()
        migrate(conn, str(self.path))
        unfinished: list[MessageRecord] = []
        owed: list[MessageRecord] = []
        for row in conn.execute(f"{_SELECT_MSG} WHERE state < 2 OR receipt = {RECEIPT_OWED} ORDER BY rowid"):
            record = MessageRecord(*row)
            (unfinished if record.state < FINAL_MIN else owed).append(record)
        outbox = [
            OutboxRecord(*row)
            for row in conn.execute(f"SELECT {', '.join(_OUT_COLS)} FROM outbox ORDER BY rowid")
        ]
        row = conn.execute("SELECT value FROM meta WHERE key='high_id'").fetchone()
        next_id = int(row[0]) + 1 if row else 1
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="smppgw-sqlite-writer", daemon=True)
        self._thread.start()
        return Snapshot(unfinished, outbox, next_id, owed)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
            self._conn.close()

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._failed is None

    # -- the interface ----------------------------------------------------------------------

    def write(self, ops: Sequence[Op], done: Done, *, high_id: int = 0) -> None:
        self._queue.put((ops, done, high_id))

    def get_message(self, message_id: str, done: Callable[[MessageRecord | None], None]) -> None:
        self._queue.put(("get", message_id, done))

    def get_trail(self, message_id: str, done: TrailDone) -> None:
        self._queue.put(("trail", message_id, done))

    def purge(self, before: float, limit: int, done: Callable[[int, bool], None]) -> None:
        self._queue.put(("purge", before, limit, done))

    # -- what several processes would share: one process has it all ------------------------

    def attach(self, sink: StoreSink) -> None:
        self._sink = sink

    def may_send(self) -> bool:
        return True

    def want_receipts(self, account: str, room: int) -> None:
        pass  # every committed deliver_sm is handed to the sink right after its commit

    def give_back(self, records: list[OutboxRecord]) -> None:
        raise NotImplementedError("with one process the outbox keeps what it holds")

    def route_report(self, provider: str, report: StatusReport) -> None:
        pass  # no other process could hold the message

    def reserve_ids(self, count: int, done: Callable[[int | None], None]) -> None:
        raise NotImplementedError("ids are not reserved in blocks with one process")

    def bind(self, account: str, member: str, limit: int, done: Callable[[bool | None], None]) -> None:
        done(True)  # the gateway's own count of its sessions is the whole count

    def unbind(self, account: str, member: str) -> None:
        pass

    def bucket(self, name: str, rate: float, burst: float, now: float) -> Bucket:
        return TokenBucket(rate, burst, now)

    def slots(self, name: str, limit: int, wake: Callable[[], None]) -> Slots | None:
        return None

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        get, get_nowait, max_batch = self._queue.get, self._queue.get_nowait, self._max_batch
        while True:
            if self._held:  # a failed commit waits for the disk: try it again each second
                try:
                    item = self._queue.get(timeout=HELD_RETRY)
                except queue.Empty:
                    self._commit(conn, [], [], 0, [], [])
                    continue
            else:
                item = get()
            # one pass over what is queued: every op in order, every write's callback, reads
            ops: list[Op] = []
            dones: list[Done] = []
            writes: list[tuple[Sequence[Op], Done, int]] = []
            reads: list[tuple[Any, ...]] = []
            high = 0
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                    break
                head = item[0]
                if type(head) is str:
                    reads.append(item)
                else:
                    ops += head
                    dones.append(item[1])
                    writes.append(item)
                    if item[2] > high:
                        high = item[2]
                if len(ops) + len(reads) >= max_batch:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            if dones or reads:
                self._commit(conn, ops, dones, high, reads, writes)
            if stop:
                return

    def _commit(
        self,
        conn: sqlite3.Connection,
        ops: list[Op],
        dones: list[Done],
        high: int,
        reads: list[tuple[Any, ...]],
        writes: list[tuple[Sequence[Op], Done, int]],
    ) -> None:
        error: BaseException | None = None
        delivered: list[OutboxRecord] = []
        if self._held and not self._commit_held(conn):
            # the disk still refuses: new messages are refused without a try, state changes wait
            fresh = self._hold(writes)
            answers = [self._read(conn, item) for item in reads]
            self._call_in_loop(_run_callbacks, fresh, self._failed, answers, [], self._sink)
            return
        if dones:
            try:
                self._apply(conn, ops, high)
                delivered = self._delivered
                self._failed = None
            except sqlite3.OperationalError as e:  # the disk: full, read-only, I/O error, locked
                self._commit_failed(e, len(ops))
                error = e
                dones = self._hold(writes)  # refused: the new messages; kept: the state changes
            except Exception as e:  # the batch itself (a constraint): every writer hears of it
                log.error("event=store_commit_failed error=%r ops=%d", e, len(ops))
                error = e
        answers = [self._read(conn, item) for item in reads]
        self._call_in_loop(_run_callbacks, dones, error, answers, delivered, self._sink)

    def _apply(self, conn: sqlite3.Connection, ops: Sequence[Op], high: int) -> None:
        """One transaction, or none of it (rolled back, and the error raised)."""
        try:
            conn.execute("BEGIN")
            self._delivered = _apply_all(conn, list(ops), time.time())
            if high:
                conn.execute(_HIGH_ID, (str(high),))
            conn.execute("COMMIT")
        except Exception:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self.batches += 1
        self.ops_written += len(ops)

    def _hold(self, writes: list[tuple[Sequence[Op], Done, int]]) -> list[Done]:
        """Keep the state-change writes for a later commit; the callbacks of writes with a new
        message, which are refused, are returned."""
        fresh: list[Done] = []
        for w in writes:
            if any(type(op) is InsertMessage for op in w[0]):
                fresh.append(w[1])
            else:
                self._held.append(w)
        return fresh

    def _commit_held(self, conn: sqlite3.Connection) -> bool:
        held = self._held
        ops = [op for w in held for op in w[0]]
        try:
            self._apply(conn, ops, max(w[2] for w in held))
        except sqlite3.OperationalError as e:
            self._commit_failed(e, len(ops))
            return False
        except Exception as e:  # not the disk: these writes will never go in, say so to them
            log.error("event=store_commit_failed error=%r ops=%d held=%d", e, len(ops), len(held))
            self._held, self._failed = [], None
            self._call_in_loop(_run_callbacks, [w[1] for w in held], e, [], [], self._sink)
            return True
        self._held = []
        log.warning("event=store_writing_again writes=%d ops=%d", len(held), len(ops))
        self._failed = None
        self._call_in_loop(_run_callbacks, [w[1] for w in held], None, [], self._delivered, self._sink)
        return True

    def _commit_failed(self, error: BaseException, ops: int) -> None:
        self.failed_commits += 1
        now = time.monotonic()
        if self._failed is None or now - self._failed_logged >= FAILED_LOG_EVERY:
            log.error(
                "event=store_commit_failed error=%r ops=%d held=%d path=%s",
                error,
                ops,
                len(self._held),
                self.path,
            )
            self._failed_logged = now
        self._failed = error

    def _read(
        self, conn: sqlite3.Connection, item: tuple[Any, ...]
    ) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        tag = item[0]
        try:
            if tag == "get":
                return item[2], (_one(conn, item[1]),)
            if tag == "trail":
                record = _one(conn, item[1])
                events = [
                    TrailEvent(at, name, json.loads(detail))
                    for at, name, detail in conn.execute(
                        "SELECT at, event, detail FROM events WHERE message_id=? ORDER BY at, rowid",
                        (item[1],),
                    )
                ]
                return item[2], (record, events if record is not None else [])
            _tag, before, limit, done = item
            removed, more = self._purge(conn, before, limit)
            return done, (removed, more)
        except sqlite3.Error as e:
            log.error("event=store_read_failed what=%s error=%r", tag, e)
            if tag == "purge":
                return item[3], (0, False)
            return item[2], (None,) if tag == "get" else (None, [])

    def _purge(self, conn: sqlite3.Connection, before: float, limit: int) -> tuple[int, bool]:
        """One small transaction: scan up to `limit` rows after the cursor in rowid (arrival)
        order, delete the final ones done before `before` whose receipt is not owed. The scan
        stops at the first message submitted after `before`: every later one is newer."""
        rows = conn.execute(
            "SELECT rowid, id, submitted_at, state, done_at, receipt FROM messages WHERE rowid > ?"
            " ORDER BY rowid LIMIT ?",
            (self._purge_from, limit),
        ).fetchall()
        doomed: list[tuple[int, str]] = []
        reached_new = len(rows) < limit
        for rowid, message_id, submitted_at, state, done_at, receipt in rows:
            if submitted_at >= before:
                reached_new = True
                break
            self._purge_from = rowid
            if state >= FINAL_MIN and done_at is not None and done_at < before and receipt != RECEIPT_OWED:
                doomed.append((rowid, message_id))
        if doomed:
            conn.execute("BEGIN")
            conn.executemany("DELETE FROM messages WHERE rowid=?", [(r,) for r, _ in doomed])
            conn.executemany("DELETE FROM events WHERE message_id=?", [(m,) for _, m in doomed])
            conn.execute("COMMIT")
            self.purged += len(doomed)
        if reached_new:
            self._purge_from = 0  # next pass from the start: rows kept back then may be due by now
        return len(doomed), not reached_new


def migrate(conn: sqlite3.Connection, name: str) -> int:
    """Create the schema in a new file, or bring an older file up to SCHEMA_VERSION; returns the
    version the file had (0 for a new file)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if version == 0 and "messages" in tables:
        version = 1  # the first format carried no version
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{name}: store schema {version} is newer than this gateway's ({SCHEMA_VERSION}); "
            "run the newer smppgw or restore a backup made for this version"
        )
    if version == SCHEMA_VERSION:
        return version
    if version == 0 and tables - {"meta"}:
        raise SchemaError(f"{name}: not an smppgw store (tables {', '.join(sorted(tables))})")
    found = version
    conn.execute("BEGIN")
    try:
        if version < 1:
            for stmt in _statements(_MESSAGES_V1):
                conn.execute(stmt)
        for stmt in _statements(_MIGRATE_TO_2):
            conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if found:
        log.warning("event=store_migrated path=%s from_schema=%d to_schema=%d", name, found, SCHEMA_VERSION)
    return found


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _one(conn: sqlite3.Connection, message_id: str) -> MessageRecord | None:
    row = conn.execute(f"{_SELECT_MSG} WHERE id=?", (message_id,)).fetchone()
    return MessageRecord(*row) if row else None


def _apply_all(conn: sqlite3.Connection, ops: list[Op], now: float) -> list[OutboxRecord]:
    """Apply a batch with a few statements per kind of write (`_write_rows`), in causal order:
    inserts, then updates (an update writes the record's current columns, so one per message
    is enough), then new outbox rows, then removed ones (a removal always follows its row's
    commit), then ended receipts and trail events. Returns the deliver_sm records the batch adds
    (a final receipt has no outbox row: its message row says it is owed)."""
    inserts: list[Any] = []  # the columns of every inserted row, one flat list (see _write_rows)
    updates, adds, removes, dones, events, others = {}, [], [], [], [], []
    delivered: list[OutboxRecord] = []
    for op in ops:
        kind = type(op)
        if kind is InsertMessage:
            record = op.record  # type: ignore[union-attr]
            record.stored_at = now
            inserts += _msg_row(record)
        elif kind is UpdateMessage:
            updates[op.record.id] = op.record  # type: ignore[union-attr]
        elif kind is ReceiptDone:
            dones.append((op.receipt, op.at, op.to, op.message_id))  # type: ignore[union-attr]
        elif kind is RemoveOutbox:
            removes.append((op.key,))  # type: ignore[union-attr]
        elif kind is AddOutbox:
            out = op.record  # type: ignore[union-attr]
            delivered.append(out)
            if not out.on_row:
                adds.append(_out_row(out))
        elif kind is AddEvent:
            e = op.event  # type: ignore[union-attr]
            events.append((op.message_id, e.at, e.event, json.dumps(e.detail, default=str)))  # type: ignore[union-attr]
        else:
            others.append(op)
    if inserts:
        _write_rows(conn, _INSERT_MSG, _INSERT_MANY, inserts, len(_MSG_COLS))
    if updates:
        flat: list[Any] = []
        for r in updates.values():
            flat += _update_row(r)
        _write_rows(conn, _UPDATE_MSG, _UPDATE_MANY, flat, 9)
    for op in others:
        _apply(conn, op)
    if adds:
        conn.executemany(_INSERT_OUT, adds)
    if removes:
        conn.executemany(_DELETE_OUT, removes)
    if dones:
        # one per message (the last, as executemany would leave it): UPDATE … FROM takes
        # distinct ids
        unique = {d[3]: d for d in dones}
        _write_rows(conn, _RECEIPT_DONE, _RECEIPT_DONE_MANY, list(chain.from_iterable(unique.values())), 4)
    if events:
        conn.executemany(_INSERT_EVENT, events)
    return delivered


def _write_rows(
    conn: sqlite3.Connection, one: str, many: dict[int, str], flat: list[Any], width: int
) -> None:
    """Write rows of `width` columns given as one flat list: as few statements of `many` rows as
    the rows allow first, then `one` for each row left."""
    rows = len(flat) // width
    at = 0
    if _MULTI_ROW:
        for size in _CHUNKS:
            sql = many[size]
            while rows - at >= size:
                conn.execute(sql, flat[at * width : (at + size) * width])
                at += size
    if at < rows:
        conn.executemany(one, [flat[i : i + width] for i in range(at * width, rows * width, width)])


def _apply(conn: sqlite3.Connection, op: Op) -> None:
    if isinstance(op, ReplaceMessage):
        r = op.record
        conn.execute(
            _REPLACE_MSG, (r.text, r.data_coding, r.registered_delivery, r.schedule_at, r.valid_until, r.id)
        )
    else:  # pragma: no cover - a programming error, not input
        raise TypeError(f"unknown store op {op!r}")


def _run_callbacks(
    dones: list[Done],
    error: BaseException | None,
    answers: list[tuple[Callable[..., Any], tuple[Any, ...]]],
    delivered: list[OutboxRecord],
    sink: StoreSink | None,
) -> None:
    """On the loop: every write of the batch hears how its commit went, the deliver_sm it added
    go to the sink (the outbox), then every read gets its answer."""
    for done in dones:
        try:
            done(error)
        except Exception:  # one caller's bug must not starve the others of their answer
            log.exception("event=store_callback_failed")
    if sink is not None:
        for record in delivered:
            try:
                sink.deliver(record)
            except Exception:
                log.exception("event=store_callback_failed")
    for answer, args in answers:
        try:
            answer(*args)
        except Exception:
            log.exception("event=store_callback_failed")
