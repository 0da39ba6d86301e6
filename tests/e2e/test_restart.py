"""kill -9 after acks: every acknowledged message still gets exactly one final receipt.

The gateway runs as a real process (`python -m smppgw serve`) on free loopback ports; an
smpplib transmitter sends, the process is SIGKILLed with messages both waiting for the
provider and waiting for a receiver, and a receiver bound to the restarted gateway collects.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.e2e.harness import connect, receipt_fields

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, smpp: int, http: int, delay: float) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(f"""
[server]
port = {smpp}
[http]
port = {http}
[store]
path = "{tmp_path / "gw.db"}"
[log]
level = "warning"
[accounts.demo]
password = "demo"
[providers.sim]
type = "simulator"
delay = {delay}
outcomes = {{ DELIVRD = 3, UNDELIV = 1 }}
""")
    return path


def start(config: Path, port: int, log: Path | None = None) -> subprocess.Popen:
    """`smppgw serve` as a process of its own, once it listens on `port`; its log (stderr) goes
    to `log` when given."""
    err = open(log, "ab") if log is not None else subprocess.PIPE  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "smppgw", "serve", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,
    )
    if log is not None:
        err.close()  # type: ignore[union-attr]
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                text = log.read_text() if log is not None else proc.stderr.read().decode()  # type: ignore[union-attr]
                raise AssertionError(text[-3000:]) from None
            time.sleep(0.05)  # waiting for a process to listen, not for a timer
    proc.kill()
    raise AssertionError("gateway did not listen within 30 s")


def final_count(http: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("smppgw_messages_total") and 'state="DELIVRD"' in line
    )


def wait_for_final_states(http: int) -> None:
    """Until the gateway reports some final states (their receipts then wait in the outbox)."""
    end = time.monotonic() + 20
    while final_count(http) < 1:
        assert time.monotonic() < end, "no message reached a final state"
        time.sleep(0.02)  # polling a real process's metrics


def test_every_acked_message_gets_one_final_receipt_after_sigkill(tmp_path):
    smpp, http = free_port(), free_port()
    config = write_config(tmp_path, smpp, http, delay=0.5)
    proc = start(config, smpp)
    try:
        tx = connect(smpp, kind="transmitter")
        for wave in range(6):  # 50 at a time: within the session window of 100
            for i in range(wave * 50, wave * 50 + 50):
                tx.submit(dest=f"38050{i:07d}", text=b"restart %d" % i)
            assert tx.pump(lambda n=wave * 50 + 50: len(tx.resps) == n, timeout=20)
        acked = [p.message_id.decode() for p in tx.resps if p.status == 0]
        assert len(acked) == 300
        # Some messages have their final state (receipt waiting in the outbox: no receiver),
        # the rest are still with the provider: kill now, mid-way.
        wait_for_final_states(http)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        tx.client.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()

    proc = start(config, smpp)
    try:
        rx = connect(smpp, kind="receiver")
        assert rx.pump(lambda: len({r.receipted_message_id for r in rx.receipts}) >= 300, timeout=30)
        rx.pump(lambda: False, timeout=1.0)  # a duplicate would arrive now
        rx.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    ids = [r.receipted_message_id.decode() for r in rx.receipts]
    assert sorted(ids) == sorted(acked)  # each acked id once, nothing else
    assert {receipt_fields(r)["stat"] for r in rx.receipts} <= {"DELIVRD", "UNDELIV"}
    assert proc.returncode == 0
