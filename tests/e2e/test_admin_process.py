"""The admin side of a real gateway process (`python -m smppgw serve`): SIGHUP reloads,
`smppgw status` and `smppgw backup` against it while an ESME is bound."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.admin_harness import TOKEN, request, write_config
from tests.e2e.harness import bind_status, connect

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout: float = 15.0) -> bool:
    """Wait for another process to do something; bounded."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


class Gateway:
    def __init__(self, tmp_path: Path) -> None:
        self.smpp, self.http = free_port(), free_port()
        self.path = tmp_path / "gw.toml"
        self.log = tmp_path / "gw.log"
        self.data = {
            "server": {"host": "127.0.0.1", "port": self.smpp},
            "http": {"host": "127.0.0.1", "port": self.http},
            "store": {"path": str(tmp_path / "gw.db")},
            "log": {"level": "warning"},
            "admin": {"token": "${TEST_ADMIN_TOKEN}"},
            "accounts": {"demo": {"password": "demo"}},
            "providers": {"sim": {"type": "simulator", "delay": 0.0}},
        }
        write_config(self.path, self.data)
        env = {**os.environ, "TEST_ADMIN_TOKEN": TOKEN}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smppgw", "serve", "--config", str(self.path)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        if not wait_until(self._listening, 20.0):
            self.stop()
            raise AssertionError(self.log.read_text())

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(self.log.read_text())
        try:
            socket.create_connection(("127.0.0.1", self.http), timeout=0.2).close()
            return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "SMPPGW_ADMIN_TOKEN": TOKEN, "TEST_ADMIN_TOKEN": TOKEN}
        return subprocess.run(
            [sys.executable, "-m", "smppgw", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def gateway(tmp_path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path)
    yield gw
    gw.stop()


def accounts(gw: Gateway) -> set[str]:
    return {a["account"] for a in request(f"{gw.url}/admin/accounts")[1]["accounts"]}


def test_sighup_reloads_the_file_and_a_broken_file_is_logged_and_changes_nothing(gateway):
    esme = connect(gateway.smpp, "transmitter")
    try:
        esme.submit()
        assert esme.pump(lambda: len(esme.resps) == 1)
        gateway.data["accounts"] = {"demo": {"password": "n3w"}, "third": {"password": "third"}}
        write_config(gateway.path, gateway.data)
        gateway.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "third" in accounts(gateway))
        esme.submit()  # still bound after the reload
        assert esme.pump(lambda: len(esme.resps) == 2)
        assert [r.status for r in esme.resps] == [0, 0]
        assert bind_status(gateway.smpp, password="demo") == 0x0E
        assert bind_status(gateway.smpp, password="n3w") == 0

        gateway.data["accounts"]["third"]["max_binds"] = "many"
        write_config(gateway.path, gateway.data)
        gateway.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload_refused" in gateway.log.read_text())
        check = gateway.cli("check-config", str(gateway.path))
        assert check.returncode == 2
        expected = check.stderr.strip().removeprefix("config error: ")
        line = next(x for x in gateway.log.read_text().splitlines() if "reload_refused" in x)
        assert "level=error" in line and "accounts.third.max_binds" in line
        assert expected.split(": ", 1)[1] in line.replace('\\"', '"')
        assert bind_status(gateway.smpp, system_id="third", password="third") == 0  # old config kept
    finally:
        esme.close()
    assert TOKEN not in gateway.log.read_text()


def test_status_and_backup_against_a_running_gateway(gateway, tmp_path):
    esme = connect(gateway.smpp, "transceiver")
    try:
        for _ in range(3):
            esme.submit()
        assert esme.pump(lambda: len(esme.receipts) == 3)
        status = gateway.cli("status", "--url", gateway.url)
        copy = tmp_path / "backup" / "copy.db"
        copy.parent.mkdir()
        backup = gateway.cli("backup", str(copy), "--config", str(gateway.path))
        again = gateway.cli("backup", str(copy), "--config", str(gateway.path))
    finally:
        esme.close()
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "Sessions (1 bound)" in out and "transceiver" in out and "127.0.0.1:" in out
    assert "Accounts (1)" in out and "Providers (1)" in out and "simulator" in out
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout.startswith(f"copied {tmp_path / 'gw.db'} to {copy}: ")
    assert "3 messages" in backup.stdout and "integrity ok" in backup.stdout
    assert again.returncode == 2 and "exists (--force to replace it)" in again.stderr
    with sqlite3.connect(copy) as db:
        rows = db.execute("SELECT account, state FROM messages").fetchall()
    assert rows == [("demo", 2)] * 3
    wrong = subprocess.run(
        [sys.executable, "-m", "smppgw", "status", "--url", gateway.url, "--token", "x" * 20],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode == 1 and "wrong admin token (401)" in wrong.stderr
