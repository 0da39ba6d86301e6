"""Ten SIGKILLs under load: the SQLite gateway is killed while an ESME submits as fast as its
window allows, started again, killed again, ten times; then a receiver binds. Every id the
gateway acknowledged gets exactly one final receipt. (Submits in flight at a kill were never
acknowledged: their ids may have been stored and get a receipt too, once, which an ESME that
never heard of the id ignores.)"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter

import pytest

from tests.e2e.harness import connect, receipt_fields
from tests.e2e.test_restart import free_port, start, write_config

KILLS = 10


def _load(port: int, acked: list[str], sent: list[int], stop: threading.Event) -> None:
    """Submit in waves of 50 (the window is 100) until the gateway dies under us."""
    try:
        tx = connect(port, kind="transmitter")
    except Exception:
        return
    n = 0
    try:
        while not stop.is_set():
            for _ in range(50):
                tx.submit(dest=f"38050{random.randrange(10**7):07d}", text=b"kill %d" % n)
                n += 1
            sent[0] += 50
            want = n
            if not tx.pump(lambda w=want: len(tx.resps) >= w, timeout=5):
                break
    except Exception:  # the connection died with the gateway
        pass
    finally:
        acked.extend(p.message_id.decode() for p in tx.resps if p.status == 0)


def _ids(receipts) -> set[str]:
    return {r.receipted_message_id.decode() for r in receipts}


@pytest.mark.slow
def test_ten_sigkills_under_load_lose_no_acked_message_and_duplicate_no_receipt(tmp_path):
    smpp, http = free_port(), free_port()
    config = write_config(tmp_path, smpp, http, delay=0.3)
    rng = random.Random(7)
    acked: list[str] = []
    sent = [0]
    loaded = 0  # kills that came while a load was under way
    for _ in range(KILLS):
        proc = start(config, smpp)
        stop = threading.Event()
        load = threading.Thread(target=_load, args=(smpp, acked, sent, stop))
        load.start()
        try:
            # kill once the load is under way (a first wave sent), at a random moment after
            before = sent[0]
            end = time.monotonic() + 20
            while sent[0] == before and time.monotonic() < end and load.is_alive():
                load.join(timeout=0.01)
            loaded += sent[0] > before
            deadline = time.monotonic() + rng.uniform(0.1, 0.6)
            while time.monotonic() < deadline and load.is_alive():
                load.join(timeout=0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            stop.set()
            load.join(timeout=20)
            if proc.poll() is None:
                proc.kill()
    assert loaded == KILLS and len(acked) >= KILLS * 50, (loaded, len(acked))  # load at every kill

    proc = start(config, smpp)
    try:
        rx = connect(smpp, kind="receiver")
        want = set(acked)
        # (the set only once there are enough receipts: building it per PDU is quadratic)
        assert rx.pump(lambda: len(rx.receipts) >= len(want) and want <= _ids(rx.receipts), timeout=60)
        rx.pump(lambda: False, timeout=1.5)  # a duplicate would arrive now
        rx.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    counts = Counter(r.receipted_message_id.decode() for r in rx.receipts)
    extra = len(counts) - len(acked)
    print(f"ten kills: {len(acked)} acked, {len(counts)} final receipts, {extra} for unacked ids")
    assert len(acked) == len(set(acked))  # one id per message, across restarts too
    assert all(counts[i] == 1 for i in acked), [i for i in acked if counts[i] != 1][:5]
    assert max(counts.values()) == 1  # nothing twice, acked or not
    assert len(counts) - len(acked) <= KILLS * 100  # at most a window in flight per kill
    assert {receipt_fields(r)["stat"] for r in rx.receipts} <= {"DELIVRD", "UNDELIV"}
    assert proc.returncode == 0
