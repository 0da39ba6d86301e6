"""SQLite store: one writer thread, group commit, WAL.

Every `write` call is queued; the writer thread takes everything queued (up to max_batch
ops), runs it in one transaction and commits once, then hands all the callbacks of that
batch back to the event loop in one call. While one commit runs the next batch gathers, so
the commit rate adapts to the load without a timer.

durability "normal" is WAL with synchronous=NORMAL: a commit is in the OS once `done` runs,
so it survives kill -9 of the gateway; "fsync" (synchronous=FULL) survives power loss too.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from smppgw.store.base import (
    AddOutbox,
    Done,
    InsertMessage,
    MessageRecord,
    Op,
    OutboxRecord,
    RemoveOutbox,
    ReplaceMessage,
    Snapshot,
    TrailEvent,
    UpdateMessage,
)

log = logging.getLogger("smppgw.store")

FINAL_MIN = 2  # message_state values >= 2 are final

_MSG_COLS = [f.name for f in fields(MessageRecord)]
_OUT_COLS = [f.name for f in fields(OutboxRecord)]
_msg_row = attrgetter(*_MSG_COLS)
_out_row = attrgetter(*_OUT_COLS)

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS messages_unfinished ON messages(state) WHERE state < 2;
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

_INSERT_MSG = f"INSERT INTO messages ({', '.join(_MSG_COLS)}) VALUES ({', '.join('?' * len(_MSG_COLS))})"
_UPDATE_MSG = (
    "UPDATE messages SET state=?, provider=?, provider_id=?, err=?, attempts=?, done_at=? WHERE id=?"
)
_REPLACE_MSG = (
    "UPDATE messages SET text=?, data_coding=?, registered_delivery=?, schedule_at=?, valid_until=?"
    " WHERE id=?"
)
_INSERT_OUT = (
    f"INSERT OR IGNORE INTO outbox ({', '.join(_OUT_COLS)}) VALUES ({', '.join('?' * len(_OUT_COLS))})"
)
_DELETE_OUT = "DELETE FROM outbox WHERE key=?"
_HIGH_ID = (
    "INSERT INTO meta(key, value) VALUES('high_id', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
)

_STOP = object()


class SqliteStore:
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
        self._failed: BaseException | None = None
        self.batches = 0  # commits made, for tests and metrics
        self.ops_written = 0

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
        conn.executescript(SCHEMA)
        conn.row_factory = None
        unfinished = [
            MessageRecord(*row)
            for row in conn.execute(
                f"SELECT {', '.join(_MSG_COLS)} FROM messages WHERE state < 2 ORDER BY rowid"
            )
        ]
        outbox = [
            OutboxRecord(*row)
            for row in conn.execute(f"SELECT {', '.join(_OUT_COLS)} FROM outbox ORDER BY rowid")
        ]
        row = conn.execute("SELECT value FROM meta WHERE key='high_id'").fetchone()
        next_id = int(row[0]) + 1 if row else 1
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="smppgw-sqlite-writer", daemon=True)
        self._thread.start()
        return Snapshot(unfinished, outbox, next_id)

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

    def get_trail(
        self, message_id: str, done: Callable[[MessageRecord | None, list[TrailEvent]], None]
    ) -> None:
        # SEAM: the record only, with an empty trail, until the store keeps trails.
        self.get_message(message_id, lambda record: done(record, []))

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            count = len(first[0]) if isinstance(first[0], list | tuple) else 1
            while count < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                count += len(item[0]) if isinstance(item[0], list | tuple) else 1
            self._commit(conn, batch)
            if stop:
                return

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        reads = [item for item in batch if item[0] == "get"]
        writes = [item for item in batch if item[0] != "get"]
        error: BaseException | None = None
        if writes:
            try:
                conn.execute("BEGIN")
                high = max(high_id for _ops, _done, high_id in writes)
                _apply_all(conn, [op for ops, _done, _high in writes for op in ops])
                if high:
                    conn.execute(_HIGH_ID, (str(high),))
                conn.execute("COMMIT")
                self.batches += 1
                self.ops_written += sum(len(w[0]) for w in writes)
            except Exception as e:  # the whole batch failed: every caller hears of it
                log.error("event=store_commit_failed error=%r ops=%d", e, sum(len(w[0]) for w in writes))
                error = e
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
        results: list[tuple[Callable[..., Any], Any]] = [(done, error) for _ops, done, _h in writes]
        for _tag, message_id, done in reads:
            row = conn.execute(
                f"SELECT {', '.join(_MSG_COLS)} FROM messages WHERE id=?", (message_id,)
            ).fetchone()
            results.append((done, MessageRecord(*row) if row else None))
        self._call_in_loop(_run_callbacks, results)


def _apply_all(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Apply a batch with one executemany per kind of write, in causal order: inserts, then
    updates (an update writes the record's current columns, so one per message is enough),
    then new outbox rows, then removed ones (a removal always follows its row's commit)."""
    inserts, updates, adds, removes, others = [], {}, [], [], []
    for op in ops:
        kind = type(op)
        if kind is InsertMessage:
            inserts.append(_msg_row(op.record))
        elif kind is UpdateMessage:
            updates[op.record.id] = op.record
        elif kind is AddOutbox:
            adds.append(_out_row(op.record))
        elif kind is RemoveOutbox:
            removes.append((op.key,))
        else:
            others.append(op)
    if inserts:
        conn.executemany(_INSERT_MSG, inserts)
    if updates:
        conn.executemany(
            _UPDATE_MSG,
            [
                (r.state, r.provider, r.provider_id, r.err, r.attempts, r.done_at, r.id)
                for r in updates.values()
            ],
        )
    for op in others:
        _apply(conn, op)
    if adds:
        conn.executemany(_INSERT_OUT, adds)
    if removes:
        conn.executemany(_DELETE_OUT, removes)


def _apply(conn: sqlite3.Connection, op: Op) -> None:
    if isinstance(op, InsertMessage):
        conn.execute(_INSERT_MSG, _msg_row(op.record))
    elif isinstance(op, UpdateMessage):
        r = op.record
        conn.execute(_UPDATE_MSG, (r.state, r.provider, r.provider_id, r.err, r.attempts, r.done_at, r.id))
    elif isinstance(op, AddOutbox):
        conn.execute(_INSERT_OUT, _out_row(op.record))
    elif isinstance(op, RemoveOutbox):
        conn.execute(_DELETE_OUT, (op.key,))
    elif isinstance(op, ReplaceMessage):
        r = op.record
        conn.execute(
            _REPLACE_MSG, (r.text, r.data_coding, r.registered_delivery, r.schedule_at, r.valid_until, r.id)
        )
    else:  # pragma: no cover - a programming error, not input
        raise TypeError(f"unknown store op {op!r}")


def _run_callbacks(results: list[tuple[Callable[..., Any], Any]]) -> None:
    for done, value in results:
        try:
            done(value)
        except Exception:  # one caller's bug must not starve the others of their answer
            log.exception("event=store_callback_failed")
