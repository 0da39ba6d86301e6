"""What an SMPP port on the internet meets: password guessing and floods, against a real
`smppgw serve` process (its CPU apart from the clients'), with a canary ESME bound and
submitting throughout. Attackers come from other loopback addresses (127.0.0.2 and up) so that
"another address" is a real source address."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from smppgw.smpp.codec import encode
from smppgw.smpp.pdu import BindTransmitter
from tests.e2e.harness import connect
from tests.e2e.test_restart import free_port, start

LOCKOUT_AFTER = 10


def config(tmp_path: Path, smpp: int, http: int, **server: object) -> Path:
    extra = "\n".join(f"{k} = {v}" for k, v in server.items())
    path = tmp_path / "gw.toml"
    path.write_text(f"""
[server]
port = {smpp}
{extra}
[http]
port = {http}
[store]
path = "{tmp_path / "gw.db"}"
[log]
level = "info"
[accounts.demo]
password = "demo"
[providers.sim]
type = "simulator"
delay = 0
""")
    return path


def raw_bind(port: int, source: str, password: str) -> int:
    """One bind_transmitter from `source` on a connection of its own: its command_status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(encode(BindTransmitter(1, 0, system_id="demo", password=password)))
        head = _read(s, 16)
        length, _, status, _ = struct.unpack(">IIII", head)
        _read(s, length - 16)
        return status


GUESSER = """
import sys
from tests.e2e.test_hostile import raw_bind
port = int(sys.argv[1])
print(" ".join(str(raw_bind(port, "127.0.0.2", f"Zx!{i}q")) for i in range(300)))
"""


def _read(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def submit_latencies(esme, count: int) -> list[float]:
    """submit_sm -> submit_sm_resp, one at a time, in seconds."""
    out = []
    for _ in range(count):
        before = len(esme.resps)
        t0 = time.perf_counter()
        esme.submit(rd=0)
        assert esme.pump(lambda before=before: len(esme.resps) > before, timeout=10)
        out.append(time.perf_counter() - t0)
    assert all(p.status == 0 for p in esme.resps)
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def metric(http: int, name: str, **labels: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items())
    )


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def test_password_guessing_is_slowed_per_address_and_bound_sessions_do_not_notice(tmp_path):
    smpp, http = free_port(), free_port()
    cfg = config(
        tmp_path,
        smpp,
        http,
        bind_fail_delay=0.02,
        bind_fail_delay_max=0.1,
        bind_lockout_after=LOCKOUT_AFTER,
        bind_lockout_seconds=60,
    )
    proc = start(cfg, smpp, log=tmp_path / "gw.log")
    try:
        canary = connect(smpp)
        submit_latencies(canary, 50)  # warm-up
        baseline = submit_latencies(canary, 300)

        # The guesser is a process of its own, so that the canary's figures are the gateway's
        # and not this client's threads taking turns at one interpreter lock.
        attack = subprocess.Popen(
            [sys.executable, "-c", GUESSER, str(smpp)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        during = []
        while attack.poll() is None:
            during += submit_latencies(canary, 20)
        statuses = [int(s) for s in attack.communicate(timeout=30)[0].split()]
        assert attack.returncode == 0 and len(statuses) == 300

        # the right password from the guessing address is refused while it is locked out ...
        locked_out = raw_bind(smpp, "127.0.0.2", "demo")
        # ... and from another address it binds at once, unslowed
        t0 = time.perf_counter()
        other = raw_bind(smpp, "127.0.0.3", "demo")
        other_s = time.perf_counter() - t0
        canary.close()
        log = (tmp_path / "gw.log").read_text()
        locked = metric(http, "smppgw_bind_guard_total", action="locked_out")
        delayed = metric(http, "smppgw_bind_guard_total", action="delayed")
        refused_locked = metric(http, "smppgw_bind_guard_total", action="refused_locked")
    finally:
        stop(proc)

    print(f"guessing: p99 {p99(baseline) * 1000:.2f} ms before, {p99(during) * 1000:.2f} ms during")
    assert statuses[: LOCKOUT_AFTER - 1] == [0x0E] * (LOCKOUT_AFTER - 1)  # ESME_RINVPASWD, answered late
    assert set(statuses[LOCKOUT_AFTER:]) == {0x0D}  # ESME_RBINDFAIL at once, unread
    assert (locked_out, other) == (0x0D, 0)
    assert other_s < 1.0  # no delay of the guard's (its shortest is 0.02 s, doubling)
    assert delayed == LOCKOUT_AFTER - 1 and locked >= 1 and refused_locked >= 300 - LOCKOUT_AFTER
    assert "bind_locked_out" in log and "peer=127.0.0.2" in log and "system_id=demo" in log
    assert "Zx!" not in log  # never a password
    # A bound session's submits keep their pace: p99 within 2x (5 ms floor: the noise of two
    # shared cores when both p99s are a millisecond or so).
    assert p99(during) <= 2 * max(p99(baseline), 0.005), (p99(baseline), p99(during), len(during))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_flood_of_idle_connections_is_capped_closed_at_the_deadline_and_the_canary_works(tmp_path):
    smpp, http = free_port(), free_port()
    cfg = config(
        tmp_path,
        smpp,
        http,
        session_init_timeout=3,
        max_unbound=500,
        max_unbound_per_ip=50,
        max_connections=1000,
    )
    proc = start(cfg, smpp, log=tmp_path / "gw.log")
    idle: list[socket.socket] = []
    try:
        canary = connect(smpp)
        base = fds(proc.pid)
        # a slowloris PDU: a header that promises 1,000 octets, then one octet at a time
        slow = socket.create_connection(("127.0.0.1", smpp), timeout=10, source_address=("127.0.0.3", 0))
        slow.sendall(struct.pack(">IIII", 1000, 0x00000002, 0, 1))
        t_slow = time.monotonic()
        # 2,000 idle connections: 1,000 from one address, 1,000 from 20 others (50 each)
        sources = ["127.0.0.2"] * 1000 + [f"127.0.0.{10 + i % 20}" for i in range(1000)]
        peak = base
        slow_closed: float | None = None

        def poke() -> None:
            """One more octet of the slow PDU; notes when the gateway has closed it."""
            nonlocal slow_closed
            if slow_closed is not None:
                return
            try:
                slow.send(b"\0")
                slow.settimeout(0.01)
                if slow.recv(1) == b"":
                    slow_closed = time.monotonic() - t_slow
            except TimeoutError:
                pass
            except OSError:
                slow_closed = time.monotonic() - t_slow

        for n, source in enumerate(sources):
            idle.append(socket.create_connection(("127.0.0.1", smpp), timeout=10, source_address=(source, 0)))
            if n % 100 == 99:
                peak = max(peak, fds(proc.pid))
                submit_latencies(canary, 2)  # the canary keeps working throughout
                poke()
        flood_peak = max(peak, fds(proc.pid))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and slow_closed is None:
            submit_latencies(canary, 2)
            poke()
        end = time.monotonic() + 10
        while time.monotonic() < end and fds(proc.pid) > base + 5:
            submit_latencies(canary, 2)
        after = fds(proc.pid)
        per_ip = metric(http, "smppgw_connections_refused_total", reason="max_unbound_per_ip")
        total = metric(http, "smppgw_connections_refused_total", reason="max_unbound")
        submit_latencies(canary, 20)
        canary.close()
    finally:
        for s in idle:
            s.close()
        stop(proc)

    print(f"flood: fds {base} before, {flood_peak} at most, {after} after; refused {per_ip} + {total}")
    # 50 from 127.0.0.2 (950 refused), then 449 of the others until max_unbound (500 with the
    # slowloris; a few more where the flood outlasts the first deadlines on a slow machine)
    assert 900 <= per_ip <= 950 and total >= 400, (per_ip, total)
    assert flood_peak <= base + 500 + 10, (base, flood_peak)  # file descriptors bounded by the caps
    assert slow_closed is not None and 2.5 < slow_closed < 3 + 2, slow_closed  # at the bind deadline
    assert after <= base + 5, (base, after)  # every idle connection closed at its deadline
    assert "connection_refused" in (tmp_path / "gw.log").read_text()
