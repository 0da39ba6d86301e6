"""A message's trail after real traffic, and final messages going away after keep_final:
smpplib over TCP, the simulator, a real SQLite file."""

from __future__ import annotations

import inspect
import sqlite3

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.e2e.harness import connect, receipt_fields, smpp_port, start_app


def _send_and_collect(port, dests):
    esme = connect(port)
    try:
        ids = [esme.submit(dest=d) for d in dests]
        assert esme.pump(lambda: len(esme.receipts) == len(dests))
        esme.sync()  # our deliver_sm_resps have reached the gateway
        local = esme.client._socket.getsockname()
        return [p.sequence for p in ids], [receipt_fields(r) for r in esme.receipts], f"{local[0]}:{local[1]}"
    finally:
        esme.close()


def _trail(app, message_id):
    d = defer.Deferred()
    app.gateway.trail(message_id, lambda record, steps: d.callback((record, steps)))
    return d


async def _until(check, timeout=10.0):
    """Poll `check` (plain or async) until it holds: the gateway's own I/O, not a timer, is awaited."""
    for _ in range(int(timeout / 0.05)):
        ok = check()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return True
        await deferLater(reactor, 0.05, lambda: None)
    return False


@pytest_twisted.ensureDeferred
async def test_trail_of_a_delivered_and_an_undelivered_message(tmp_path):
    app = start_app(tmp_path, simulator={"enroute": False})
    try:
        _, receipts, peer = await deferToThread(
            _send_and_collect, smpp_port(app), ["380501230001", "380501230002"]
        )
        by_stat = {r["stat"]: r["id"] for r in receipts}
        for stat, message_id in by_stat.items():
            # the receipt's answer is written with the next batch: wait for it to be on the row
            async def answered(mid=message_id):
                record, steps = await _trail(app, mid)
                return steps[-1].event == "receipt_delivered"

            assert await _until(answered)
            record, steps = await _trail(app, message_id)
            names = [s.event for s in steps]
            assert names == ["received", "stored", "sent", "final", "receipt_queued", "receipt_delivered"]
            assert steps[2].detail["provider"] == "sim" and steps[2].detail["provider_id"]
            assert {k: steps[3].detail[k] for k in ("stat", "err")} == {"stat": stat, "err": record.err}
            assert steps[-1].detail == {"to": peer}
            assert all(a.at <= b.at for a, b in zip(steps, steps[1:], strict=False))
        assert set(by_stat) == {"DELIVRD", "UNDELIV"}
        assert await _trail(app, "9999999999") == (None, [])
    finally:
        await app.stop(grace=1.0)


@pytest_twisted.ensureDeferred
async def test_final_messages_go_away_after_keep_final_and_unanswered_receipts_stay(tmp_path):
    db = tmp_path / "gw.db"
    app = start_app(
        tmp_path,
        store={"path": str(db), "keep_final": 0.001, "purge_every": 3600, "purge_batch": 3},
        simulator={"enroute": False},
    )

    def rows():
        with sqlite3.connect(db) as c:
            return c.execute("SELECT count(*), sum(receipt = 1) FROM messages").fetchone()

    try:
        await deferToThread(_send_and_collect, smpp_port(app), [f"38050123{i:04d}" for i in range(10, 18)])
        assert await _until(lambda: rows() == (8, 0))  # every receipt answered, on its row

        # one more message whose receipt nobody takes: a transmitter gets no deliver_sm
        def submit_only():
            esme = connect(smpp_port(app), kind="transmitter")
            esme.submit(dest="380501239999")
            esme.sync()
            esme.close()

        await deferToThread(submit_only)
        assert await _until(lambda: rows() == (9, 1))
        await deferLater(reactor, 0.01, lambda: None)  # older than keep_final
        app.gateway.retention.run()
        assert await _until(lambda: rows() == (1, 1))  # in batches of three rows a look
        assert app.store.purged == 8
    finally:
        await app.stop(grace=1.0)
