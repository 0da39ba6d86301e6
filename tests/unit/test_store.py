"""The SQLite store on a real file: group commit, callbacks, resume after reopen."""

import threading

from smppgw.store.base import (
    AddOutbox,
    InsertMessage,
    MessageRecord,
    OutboxRecord,
    RemoveOutbox,
    UpdateMessage,
)
from smppgw.store.sqlite import SqliteStore


def record(i, state=0):
    return MessageRecord(
        id=f"{i:010d}",
        account="demo",
        source="SRC",
        source_ton=5,
        source_npi=0,
        destination="380501234567",
        dest_ton=1,
        dest_npi=1,
        text=f"hello {i}",
        data_coding=0,
        esm_class=0,
        registered_delivery=1,
        submitted_at=1000.0 + i,
        state=state,
    )


def outbox(i):
    return OutboxRecord(
        key=f"{i:010d}/2",
        account="demo",
        message_id=f"{i:010d}",
        state=2,
        source_addr="380501234567",
        source_ton=1,
        source_npi=1,
        dest_addr="SRC",
        dest_ton=5,
        dest_npi=0,
        esm_class=4,
        data_coding=0,
        short_message=b"id:x",
        created_at=1.0,
    )


class Inline:
    """Stands in for reactor.callFromThread: runs callbacks on the writer thread, records them."""

    def __init__(self):
        self.results = []
        self.event = threading.Event()

    def __call__(self, fn, *args):
        fn(*args)


def write_all(store, batches):
    done = threading.Semaphore(0)
    errors = []

    def cb(err):
        errors.append(err)
        done.release()

    for ops, high in batches:
        store.write(ops, cb, high_id=high)
    for _ in batches:
        assert done.acquire(timeout=10)
    return errors


def test_writes_commit_and_reopen_gives_unfinished_outbox_and_next_id(tmp_db):
    s = SqliteStore(tmp_db, Inline())
    snap = s.open()
    assert snap.unfinished == [] and snap.outbox == [] and snap.next_id == 1
    msgs = [record(i) for i in range(1, 6)]
    errors = write_all(s, [([InsertMessage(m)], i + 1) for i, m in enumerate(msgs)])
    assert errors == [None] * 5
    final = msgs[0]
    final.state, final.provider, final.provider_id, final.done_at = 2, "sim", "p1", 2000.0
    enroute = msgs[1]
    enroute.state, enroute.provider_id = 1, "p2"
    assert write_all(
        s, [([UpdateMessage(final), AddOutbox(outbox(1))], 0), ([UpdateMessage(enroute)], 0)]
    ) == [None, None]
    s.close()

    again = SqliteStore(tmp_db, Inline())
    snap = again.open()
    assert [m.id for m in snap.unfinished] == [m.id for m in msgs[1:]]
    assert snap.unfinished[0].state == 1 and snap.unfinished[0].provider_id == "p2"
    assert [o.key for o in snap.outbox] == ["0000000001/2"]
    assert snap.outbox[0].short_message == b"id:x"
    assert snap.next_id == 6
    assert write_all(again, [([RemoveOutbox("0000000001/2")], 0)]) == [None]
    again.close()
    assert SqliteStore(tmp_db, Inline()).open().outbox == []


def test_many_writes_are_grouped_into_few_commits(tmp_db):
    s = SqliteStore(tmp_db, Inline())
    s.open()
    n = 3000
    errors = write_all(s, [([InsertMessage(record(i))], i) for i in range(1, n + 1)])
    assert errors == [None] * n
    assert s.ops_written == n
    assert s.batches < n / 5  # grouped: far fewer commits than writes
    s.close()


def test_failed_batch_reports_the_error_to_every_writer_and_store_keeps_working(tmp_db):
    s = SqliteStore(tmp_db, Inline())
    s.open()
    assert write_all(s, [([InsertMessage(record(1))], 1)]) == [None]
    errors = write_all(s, [([InsertMessage(record(1))], 1)])  # duplicate primary key
    assert errors[0] is not None
    assert write_all(s, [([InsertMessage(record(2))], 2)]) == [None]
    assert s.healthy()
    got = []
    ev = threading.Event()
    s.get_message("0000000002", lambda r: (got.append(r), ev.set()))
    assert ev.wait(10)
    assert got[0].text == "hello 2"
    s.close()


def test_multi_row_statements_write_what_one_row_at_a_time_writes(tmp_path, monkeypatch):
    """150 rows of each kind (chunks of 64 and 8 and single rows), a repeated receipt result
    (the last wins, as with executemany), compared with executemany only."""
    import sqlite3

    from smppgw.store import sqlite as mod
    from smppgw.store.base import ReceiptDone

    def run(multi: bool, name: str) -> list[tuple]:
        monkeypatch.setattr(mod, "_MULTI_ROW", multi)
        conn = sqlite3.connect(tmp_path / name, isolation_level=None)
        mod.migrate(conn, name)
        msgs = [record(i) for i in range(1, 151)]
        mod._apply_all(conn, [InsertMessage(m) for m in msgs], 5.0)
        for m in msgs[:140]:
            m.state, m.provider, m.provider_id, m.err, m.done_at, m.receipt = (
                2,
                "sim",
                f"p{m.id}",
                "001",
                9.0,
                1,
            )
        mod._apply_all(conn, [UpdateMessage(m) for m in msgs[:140]], 6.0)
        dones = [ReceiptDone(m.id, 2, 10.0, "peer") for m in msgs[:75]]
        mod._apply_all(conn, [*dones, ReceiptDone(msgs[0].id, 3, 11.0, "other")], 7.0)
        return conn.execute("SELECT * FROM messages ORDER BY id").fetchall()

    many, single = run(True, "many.db"), run(False, "single.db")
    assert many == single and len(many) == 150
    assert many[0][-5:] == (
        None,
        3,
        11.0,
        "other",
        5.0,
    )  # sent_at, receipt, receipt_at, receipt_to, stored_at
