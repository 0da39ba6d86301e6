"""SQLite store, schema 2: the final receipt on the message row, the trail, retention, and the
migration of a file written in the first format (real files, real SQLite)."""

import sqlite3
import threading

import pytest

from smppgw.store.base import (
    RECEIPT_DELIVERED,
    RECEIPT_DROPPED,
    RECEIPT_OWED,
    AddEvent,
    InsertMessage,
    ReceiptDone,
    TrailEvent,
    UpdateMessage,
)
from smppgw.store.sqlite import SCHEMA_VERSION, SchemaError, SqliteStore
from tests.unit.test_store import Inline, record, write_all


def ask(fn, *args):
    """Call a store read and wait for its answer on the writer thread."""
    got = []
    ev = threading.Event()
    fn(*args, lambda *a: (got.append(a), ev.set()))
    assert ev.wait(10)
    return got[0]


def finish(m, state=2, done_at=2000.0, receipt=RECEIPT_OWED):
    m.state, m.provider, m.provider_id, m.done_at, m.receipt = state, "sim", f"p{m.id}", done_at, receipt
    m.sent_at = done_at - 1
    return m


def test_a_final_receipt_rides_on_its_row_until_answered(tmp_db):
    s = SqliteStore(tmp_db, Inline())
    s.open()
    msgs = [record(i) for i in range(1, 4)]
    assert write_all(s, [([InsertMessage(m)], i) for i, m in enumerate(msgs, 1)]) == [None] * 3
    assert write_all(s, [([UpdateMessage(finish(msgs[0])), UpdateMessage(finish(msgs[1]))], 0)]) == [None]
    assert write_all(s, [([ReceiptDone(msgs[1].id, RECEIPT_DELIVERED, 2001.5, "127.0.0.1:5000")], 0)]) == [
        None
    ]
    s.close()

    again = SqliteStore(tmp_db, Inline())
    snap = again.open()
    assert [m.id for m in snap.unfinished] == [msgs[2].id]
    assert [m.id for m in snap.receipts_owed] == [msgs[0].id]
    assert snap.receipts_owed[0].state == 2 and snap.receipts_owed[0].done_at == 2000.0
    assert snap.outbox == []  # no outbox row for either final receipt
    (delivered,) = ask(again.get_message, msgs[1].id)
    assert delivered.receipt == RECEIPT_DELIVERED
    assert delivered.receipt_at == 2001.5 and delivered.receipt_to == "127.0.0.1:5000"
    assert delivered.stored_at is not None and delivered.sent_at == 1999.0
    again.close()


def test_trail_events_come_back_in_order_with_the_row(tmp_db):
    s = SqliteStore(tmp_db, Inline())
    s.open()
    m = record(7)
    ops = [
        InsertMessage(m),
        AddEvent(m.id, TrailEvent(1003.0, "failover", {"provider": "a", "to": "b"})),
        AddEvent(m.id, TrailEvent(1002.0, "attempt_failed", {"provider": "a", "error": "HTTP 503"})),
    ]
    assert write_all(s, [(ops, 7)]) == [None]
    rec, events = ask(s.get_trail, m.id)
    assert rec.id == m.id and rec.stored_at is not None
    assert [(e.at, e.event) for e in events] == [(1002.0, "attempt_failed"), (1003.0, "failover")]
    assert events[0].detail == {"provider": "a", "error": "HTTP 503"}
    assert ask(s.get_trail, "nope") == (None, [])
    s.close()


def count(path, table):
    with sqlite3.connect(path) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_purge_removes_old_final_messages_in_small_batches_and_keeps_the_rest(tmp_db):
    s = SqliteStore(tmp_db, Inline())
    s.open()
    old = [finish(record(i), receipt=0) for i in range(1, 11)]  # submitted 1001..1010, done 2000
    owed = finish(record(11))  # final, receipt still owed: kept
    dropped = finish(record(12), receipt=RECEIPT_DROPPED)
    unfinished = record(13)  # still with the gateway: kept
    late = finish(record(14), done_at=9000.0, receipt=0)  # old, but done after the cut-off: kept
    rows = [*old, owed, dropped, unfinished, late]
    ops = [InsertMessage(m) for m in rows] + [AddEvent(m.id, TrailEvent(1.0, "x")) for m in rows]
    assert write_all(s, [(ops, 14)]) == [None]
    new = finish(record(5000), done_at=6000.0, receipt=0)  # submitted after the cut-off
    assert write_all(s, [([InsertMessage(new)], 5000)]) == [None]
    assert count(tmp_db, "messages") == 15

    passes = []
    more = True
    while more:
        removed, more = ask(s.purge, 3000.0, 4)
        passes.append(removed)
    assert sum(passes) == 11 and len(passes) >= 3  # ten old + the dropped one, four rows a look
    with sqlite3.connect(tmp_db) as c:
        left = sorted(r[0] for r in c.execute("SELECT id FROM messages"))
        assert left == sorted([owed.id, unfinished.id, late.id, new.id])
        assert sorted(r[0] for r in c.execute("SELECT message_id FROM events")) == sorted(
            [owed.id, unfinished.id, late.id]
        )
    assert s.purged == 11
    assert ask(s.purge, 3000.0, 4) == (0, False)  # nothing more is due
    assert ask(s.purge, 9500.0, 100) == (2, False)  # later on, the late one and the new one go too
    s.close()


V1_SCHEMA = """
CREATE TABLE messages (
    id TEXT PRIMARY KEY, account TEXT NOT NULL,
    source TEXT NOT NULL, source_ton INTEGER NOT NULL, source_npi INTEGER NOT NULL,
    destination TEXT NOT NULL, dest_ton INTEGER NOT NULL, dest_npi INTEGER NOT NULL,
    text TEXT NOT NULL,
    data_coding INTEGER NOT NULL, esm_class INTEGER NOT NULL, registered_delivery INTEGER NOT NULL,
    submitted_at REAL NOT NULL, state INTEGER NOT NULL,
    provider TEXT NOT NULL, provider_id TEXT NOT NULL, err TEXT NOT NULL, attempts INTEGER NOT NULL,
    done_at REAL, user_message_reference INTEGER, schedule_at REAL, valid_until REAL
);
CREATE INDEX messages_unfinished ON messages(state) WHERE state < 2;
CREATE TABLE outbox (
    key TEXT PRIMARY KEY, account TEXT NOT NULL, message_id TEXT NOT NULL, state INTEGER NOT NULL,
    source_addr TEXT NOT NULL, source_ton INTEGER NOT NULL, source_npi INTEGER NOT NULL,
    dest_addr TEXT NOT NULL, dest_ton INTEGER NOT NULL, dest_npi INTEGER NOT NULL,
    esm_class INTEGER NOT NULL, data_coding INTEGER NOT NULL, short_message BLOB NOT NULL,
    created_at REAL NOT NULL, user_message_reference INTEGER, network_error INTEGER
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO messages VALUES ('0000000001','demo','SRC',5,0,'380501234567',1,1,'queued',0,0,1,
    1000.0,0,'sim','','000',0,NULL,NULL,NULL,NULL);
INSERT INTO messages VALUES ('0000000002','demo','SRC',5,0,'380501234568',1,1,'enroute',0,0,1,
    1001.0,1,'sim','p2','000',0,NULL,7,NULL,NULL);
INSERT INTO messages VALUES ('0000000003','demo','SRC',5,0,'380501234569',1,1,'done',0,0,1,
    1002.0,2,'sim','p3','000',0,1003.0,NULL,NULL,NULL);
INSERT INTO outbox VALUES ('0000000003/2','demo','0000000003',2,'380501234569',1,1,'SRC',5,0,4,0,
    X'69643a30303030303030303033',1003.0,NULL,NULL);
INSERT INTO meta VALUES ('high_id','3');
"""


def test_a_first_format_file_is_migrated_and_keeps_everything(tmp_db):
    with sqlite3.connect(tmp_db) as c:
        c.executescript(V1_SCHEMA)
    s = SqliteStore(tmp_db, Inline())
    snap = s.open()
    assert [m.id for m in snap.unfinished] == ["0000000001", "0000000002"]
    assert snap.unfinished[1].provider_id == "p2" and snap.unfinished[1].user_message_reference == 7
    assert [o.key for o in snap.outbox] == ["0000000003/2"]  # the old receipt row still goes out
    assert snap.receipts_owed == [] and snap.next_id == 4
    # the new columns work on the migrated rows
    done = finish(snap.unfinished[0])
    assert write_all(s, [([UpdateMessage(done)], 0)]) == [None]
    assert write_all(s, [([AddEvent(done.id, TrailEvent(1.0, "x"))], 0)]) == [None]
    s.close()
    with sqlite3.connect(tmp_db) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "messages_open" in names and "messages_unfinished" not in names
    again = SqliteStore(tmp_db, Inline()).open()
    assert [m.id for m in again.receipts_owed] == ["0000000001"]


def test_a_file_from_a_newer_gateway_is_refused_with_its_versions(tmp_db):
    SqliteStore(tmp_db, Inline()).open()
    with sqlite3.connect(tmp_db) as c:
        c.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaError, match=rf"schema {SCHEMA_VERSION + 1} is newer .*\({SCHEMA_VERSION}\)"):
        SqliteStore(tmp_db, Inline()).open()


def test_a_file_that_is_not_a_store_is_refused(tmp_db):
    with sqlite3.connect(tmp_db) as c:
        c.execute("CREATE TABLE invoices (n INTEGER)")
    with pytest.raises(SchemaError, match="not an smppgw store"):
        SqliteStore(tmp_db, Inline()).open()
