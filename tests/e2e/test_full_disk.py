"""A full disk under a running SQLite gateway: on a small tmpfs made by the test (unmounted at
the end), the gateway takes messages, the disk fills up, and then no submit is answered ROK
(ESME_RSYSERR), /healthz says 503, the metric and an error line say why; once space comes back
writing resumes by itself and every message acknowledged before, during and after gets exactly
one final receipt."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from tests.e2e.harness import connect
from tests.e2e.test_hostile import metric, stop
from tests.e2e.test_restart import free_port, start

RSYSERR = 0x08


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or done.returncode})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def health(http: int) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2).status
    except urllib.error.HTTPError as e:
        return e.code


def fill(disk) -> None:
    """Write until the file system says ENOSPC, in big blocks and then in small ones."""
    for name, block in (("filler", 65536), ("filler2", 512)):
        with open(disk / name, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError:
                pass


def submit_wave(esme, n: int, tag: str) -> list:
    start_at = len(esme.resps)
    for i in range(n):
        esme.submit(dest=f"38050{i:05d}99", text=f"{tag} {i}".encode(), rd=1)
    assert esme.pump(lambda: len(esme.resps) >= start_at + n, timeout=20)
    return esme.resps[start_at:]


def test_a_full_disk_refuses_new_messages_loses_nothing_acked_and_heals_itself(tmp_path, small_disk):
    smpp, http = free_port(), free_port()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[server]
port = {smpp}
[http]
port = {http}
[store]
path = "{small_disk / "gw.db"}"
[log]
level = "info"
[accounts.demo]
password = "demo"
[providers.sim]
type = "simulator"
delay = 1.0
outcomes = {{ DELIVRD = 1 }}
""")
    log = tmp_path / "gw.log"
    proc = start(cfg, smpp, log=log)
    try:
        esme = connect(smpp)  # a transceiver: receipts come as they are committed
        acked = [p.message_id.decode() for p in submit_wave(esme, 50, "before") if p.status == 0]
        assert len(acked) == 50
        fill(small_disk)
        refused = False
        during_health = 200
        for wave in range(40):  # the disk is full: soon every new message is refused
            resps = submit_wave(esme, 25, f"full{wave}")
            acked += [p.message_id.decode() for p in resps if p.status == 0]
            if any(p.status == RSYSERR for p in resps):
                refused = True
                during_health = health(http)
                break
        assert refused, "a full disk never refused a submit"
        assert {p.status for p in esme.resps} <= {0, RSYSERR}
        failures = metric(http, "smppgw_store_commit_failures_total")
        store_up = metric(http, "smppgw_store_up")
        esme.pump(lambda: False, timeout=1.5)  # state changes and receipts wait meanwhile

        (small_disk / "filler").unlink()  # space comes back
        (small_disk / "filler2").unlink()
        end = time.monotonic() + 10
        while health(http) != 200 and time.monotonic() < end:
            esme.pump(lambda: False, timeout=0.2)
        healed = health(http)
        after = submit_wave(esme, 50, "after")
        assert [p.status for p in after] == [0] * 50
        acked += [p.message_id.decode() for p in after]
        want = set(acked)
        assert esme.pump(
            lambda: (
                len(esme.receipts) >= len(want)
                and want <= {r.receipted_message_id.decode() for r in esme.receipts}
            ),
            timeout=30,
        )
        esme.pump(lambda: False, timeout=1.5)  # a duplicate would arrive now
        esme.close()
    finally:
        stop(proc)
    text = log.read_text()
    counts = Counter(r.receipted_message_id.decode() for r in esme.receipts)
    assert during_health == 503 and store_up == 0 and failures >= 1
    assert healed == 200
    assert "store_commit_failed" in text and "full" in text
    assert "store_writing_again" in text
    assert all(counts[i] == 1 for i in acked) and max(counts.values()) == 1
