"""`smppgw serve --workers 2` as a real process group on loopback, on the test run's Redis:
sessions spread over both workers on one port (each worker's own admin port says which holds
which), every receipt comes back whichever worker took the submit, SIGTERM ends all with exit 0,
a SIGKILLed worker comes back under its node name, an admin-API reload reaches both, and SQLite
is refused. Blocking smpplib ESMEs; waits poll real processes with a deadline."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import smpplib.client

from tests.e2e.admin_harness import TOKEN, request, write_config
from tests.e2e.harness import Esme, connect
from tests.e2e.test_protocol_depth import _self_signed

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_pair() -> int:
    """A port p with p + 1 free as well (the two workers' own ports)."""
    for _ in range(100):
        p = free_port()
        if p < 65535:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue
    raise AssertionError("no two free ports in a row")


def wait_until(cond, timeout: float = 20.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < end, f"timed out waiting for {what or cond}"
        time.sleep(0.05)  # polling real processes


class Workers:
    """`python -m smppgw serve --workers N` with its config file and its log."""

    def __init__(self, tmp_path: Path, store: dict[str, Any], n: int = 2, **extra: Any) -> None:
        self.n = n
        self.smpp, self.http, self.own = free_port(), free_port(), free_pair()
        self.path, self.log = tmp_path / "gw.toml", tmp_path / "gw.log"
        self.data: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": self.smpp, **extra.pop("server", {})},
            "http": {"host": "127.0.0.1", "port": self.http, "worker_ports_from": self.own},
            "store": store,
            "log": {"level": "info"},
            "admin": {"token": "${TEST_ADMIN_TOKEN}"},
            "accounts": {"demo": {"password": "demo"}},
            "providers": {"sim": {"type": "simulator", "delay": 0.0, "enroute": False}},
            **extra,
        }
        write_config(self.path, self.data)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smppgw", "serve", "--config", str(self.path), "--workers", str(n)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "TEST_ADMIN_TOKEN": TOKEN},
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text()

    def ready_pids(self, worker: int) -> list[int]:
        return [int(p) for p in re.findall(rf"event=worker_ready worker={worker} pid=(\d+)", self.text())]

    def wait_ready(self, starts: int = 1) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            return all(len(self.ready_pids(i)) >= starts for i in range(self.n))

        wait_until(up, what=f"{self.n} workers ready")

    def url(self, worker: int, path: str) -> str:
        return f"http://127.0.0.1:{self.own + worker}{path}"

    def peers(self, worker: int) -> set[str]:
        status, body = request(self.url(worker, "/admin/sessions"))
        assert status == 200, body
        return {s["peer"] for s in body["sessions"]}

    def worker_of(self, esme: Esme) -> int:
        """Which worker holds this session: the one whose admin API lists its address."""
        here = f"127.0.0.1:{esme.client._socket.getsockname()[1]}"
        (worker,) = [i for i in range(self.n) if here in self.peers(i)]
        return worker

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def bind_on(group: Workers, worker: int, kind: str, tries: int = 40, **kw: Any) -> Esme:
    """Bind sessions until one lands on `worker` (the kernel picks); the others are closed."""
    for _ in range(tries):
        esme = connect(group.smpp, kind=kind, **kw)
        if group.worker_of(esme) == worker:
            return esme
        esme.close()
    raise AssertionError(f"no {kind} session landed on worker {worker} in {tries} binds")


def submit_all(esme: Esme, n: int, tag: str) -> list[str]:
    for i in range(n):
        esme.submit(dest=f"3805{i:08d}", text=f"{tag} {i}".encode())
    assert esme.pump(lambda: len(esme.resps) >= n, timeout=20)
    assert all(p.status == 0 for p in esme.resps), [p.status for p in esme.resps]
    return [p.message_id.decode() for p in esme.resps]


def test_two_workers_share_the_smpp_port_and_every_receipt_comes_back(tmp_path, redis_store_config):
    cert, key = _self_signed(tmp_path)
    tls_port = free_port()
    tls = {"tls_port": tls_port, "tls_cert": str(cert), "tls_key": str(key)}
    group = Workers(tmp_path, redis_store_config, server=tls)
    esmes: list[Esme] = []
    try:
        group.wait_ready()
        # transmitters on both workers, one receiver on worker 1: what worker 0 takes must cross
        esmes += [bind_on(group, 0, "transmitter"), bind_on(group, 1, "transmitter")]
        rx = bind_on(group, 1, "receiver")
        esmes.append(rx)
        assert [group.worker_of(e) for e in esmes] == [0, 1, 1]
        ids = submit_all(esmes[0], 60, "via worker 0") + submit_all(esmes[1], 60, "via worker 1")
        # and one TLS session on the shared TLS port, wherever it lands
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        client = smpplib.client.Client("127.0.0.1", tls_port, timeout=5, ssl_context=ctx)
        tls_esme = Esme(client)
        client.set_message_sent_handler(tls_esme.on_sent)
        client.connect()
        client.bind_transmitter(system_id="demo", password="demo")
        esmes.append(tls_esme)
        ids += submit_all(tls_esme, 5, "over TLS")
        assert len(set(ids)) == 125  # ids stay unique across the workers
        assert rx.pump(lambda: len(rx.receipts) >= 125, timeout=30), len(rx.receipts)
        rx.pump(lambda: False, timeout=0.5)  # a duplicate would arrive now
        got = sorted(r.receipted_message_id.decode() for r in rx.receipts)
        assert got == sorted(ids)
        # the per-worker metrics: each worker counts what it took itself
        taken = []
        for i in range(2):
            text = urllib.request.urlopen(group.url(i, "/metrics"), timeout=5).read().decode()
            taken.append(
                _sum(text, 'smppgw_pdus_total{command="submit_sm",direction="in",status="ESME_ROK"}')
            )
        assert taken[0] >= 60 and taken[1] >= 60 and sum(taken) == 125
        assert "worker=0 event=listening" in group.text() and "worker=1 event=listening" in group.text()
    finally:
        for e in esmes:
            e.close()
        assert group.stop() == 0, group.text()[-3000:]


def test_connections_go_to_the_workers_in_turn_and_past_one_that_is_down(tmp_path, redis_store_config):
    """The parent accepts and hands each connection to the next ready worker: 6 ESMEs on 2
    workers are 3 and 3, alternating (the kernel's SO_REUSEPORT hash gave no such promise); with
    one worker killed, every new connection goes to the other, and none is refused."""
    group = Workers(tmp_path, redis_store_config)
    esmes: list[Esme] = []
    try:
        group.wait_ready()
        esmes += [connect(group.smpp, kind="transmitter") for _ in range(6)]
        where = [group.worker_of(e) for e in esmes]
        assert sorted(where) == [0, 0, 0, 1, 1, 1] and where[0] != where[1], where
        assert all(where[i] != where[i + 1] for i in range(5)), where
        (victim,) = group.ready_pids(1)
        os.kill(victim, signal.SIGKILL)
        died = f"event=worker_died worker=1 pid={victim}"
        wait_until(lambda: died in group.text(), what="worker 1's death")
        late = [connect(group.smpp, kind="transmitter") for _ in range(4)]
        esmes += late
        on_0 = group.peers(0)  # (worker 1's own port is down with it)
        assert all(f"127.0.0.1:{e.client._socket.getsockname()[1]}" in on_0 for e in late)
        for e in late:
            e.submit(rd=0)
        assert all(e.pump(lambda e=e: len(e.resps) == 1, timeout=10) for e in late)
        assert [e.resps[0].status for e in late] == [0] * 4
    finally:
        for e in esmes:
            e.close()
        assert group.stop() == 0, group.text()[-3000:]


SUBMITS_TAKEN = 'smppgw_pdus_total{command="submit_sm",direction="in",status="ESME_ROK"}'


def _sum(metrics: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(line_start))


def test_sigterm_of_the_parent_drains_every_worker_and_exits_0(tmp_path, redis_store_config):
    group = Workers(tmp_path, redis_store_config)
    try:
        group.wait_ready()
        pids = group.ready_pids(0) + group.ready_pids(1)
        esme = bind_on(group, 0, "transceiver")
        submit_all(esme, 10, "before stop")
        group.proc.send_signal(signal.SIGTERM)
        assert group.proc.wait(timeout=30) == 0, group.text()[-3000:]
        esme.client.disconnect()
    finally:
        group.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    text = group.text()
    assert text.count("event=worker_stopped") == 2 and 'exit="exit 0"' in text
    assert "event=workers_stopped status=0" in text
    refused = subprocess.run(  # the port is closed: nobody listens any more
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {group.smpp}))"],
        capture_output=True,
    )
    assert refused.returncode != 0 and b"ConnectionRefusedError" in refused.stderr


def test_a_killed_worker_is_started_again_under_its_node_name(tmp_path, redis_store_config):
    group = Workers(tmp_path, {**redis_store_config, "node": "wk"})
    try:
        group.wait_ready()
        (victim,) = group.ready_pids(1)
        os.kill(victim, signal.SIGKILL)
        # its heartbeat key must expire first (claim_after = 3 s), then it takes the same name
        wait_until(lambda: len(group.ready_pids(1)) == 2, timeout=30, what="worker 1 back")
        assert group.ready_pids(1)[1] != victim and len(group.ready_pids(0)) == 1
        assert re.search(rf"event=worker_died worker=1 pid={victim} exit=\"signal SIGKILL\"", group.text())
        assert len(re.findall(r"worker=1 event=store_opened .*node=wk-1 ", group.text())) == 2
        assert group.proc.poll() is None
        assert urllib.request.urlopen(group.url(1, "/healthz"), timeout=5).status == 200
        esme = bind_on(group, 1, "transceiver")
        ids = submit_all(esme, 20, "after restart")
        assert esme.pump(lambda: len(esme.receipts) >= 20, timeout=20)
        assert sorted(r.receipted_message_id.decode() for r in esme.receipts) == sorted(ids)
        esme.close()
    finally:
        assert group.stop() == 0, group.text()[-3000:]


def test_a_reload_through_one_workers_admin_api_reaches_the_other(tmp_path, redis_store_config):
    group = Workers(tmp_path, redis_store_config)
    try:
        group.wait_ready()
        group.data["accounts"]["later"] = {"password": "later"}
        write_config(group.path, group.data)
        status, body = request(group.url(0, "/admin/reload"), "POST")
        assert status == 200 and body["added"] == ["accounts.later"], body
        assert body["needs_restart"] == []  # the worker's own node name and ports are no change

        def knows_later(worker: int) -> bool:
            status, body = request(group.url(worker, "/admin/accounts"))
            return status == 200 and any(a["account"] == "later" for a in body["accounts"])

        wait_until(lambda: knows_later(1), what="worker 1 reloaded")
        assert 'event=workers_reload reason="admin API on worker 0"' in group.text()
        assert len(re.findall(r"worker=\d event=config_reloaded", group.text())) == 2
    finally:
        assert group.stop() == 0, group.text()[-3000:]


def test_workers_with_the_sqlite_store_are_refused_with_exit_2(tmp_path):
    path = write_config(
        tmp_path / "gw.toml",
        {
            "server": {"port": free_port()},
            "store": {"path": str(tmp_path / "gw.db")},
            "accounts": {"demo": {"password": "demo"}},
            "providers": {"sim": {"type": "simulator"}},
        },
    )
    r = subprocess.run(
        [sys.executable, "-m", "smppgw", "serve", "--config", str(path), "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert 'store.type: --workers needs type = "redis"' in r.stderr
    assert "one SQLite file cannot be shared by several processes" in r.stderr
    assert not (tmp_path / "gw.db").exists()  # nothing was started
