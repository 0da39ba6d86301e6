"""`smppgw bench` / `scripts/bench`: start a gateway (or target a running one), drive it with
the load generator, print a table and one JSON object.

Scenarios (bounded in count and time, loopback only):
  S1 ingest   transceivers submit with registered_delivery=1 to the simulator; every receipt back
  S2 HTTP     one campaign text to distinct numbers through the SMS Partner adapter (batches of up
              to 500 numbers) against its fake provider, a separate process answering 50 ms late
  S3 latency  a fixed offered rate (default 2,000 msg/s); latency percentiles
  S4 idle     1,000 bound sessions; RSS per session
  S5 mix      20% two-part UDH, 20% UCS2
  null        S1's load against a trivial responder: the load generator's own ceiling
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smppgw.bench.loadgen import Stats, hold_idle, run_load

ALL = ("null", "S1", "S2", "S3", "S4", "S5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"bench: the server exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.05)
    raise SystemExit("bench: the server did not listen in time")


def gateway_config(workdir: Path, smpp: int, http: int, durability: str, provider: str = "") -> Path:
    path = workdir / "bench.toml"
    path.write_text(f"""
[server]
port = {smpp}
window = 1000
[http]
port = {http}
[store]
path = "{workdir / "bench.db"}"
durability = "{durability}"
[log]
level = "warning"
[accounts.bench]
password = "bench"
max_binds = 2000
{provider or SIMULATOR}
""")
    return path


SIMULATOR = """
[providers.sim]
type = "simulator"
delay = 0
enroute = false
"""

HTTP_PROVIDER = """
[providers.partner]
type = "smspartner"
url = "http://127.0.0.1:{port}"
api_key = "bench-key"
max_concurrency = 16
poll_first = 0.5
poll_max_gap = 1
balance_interval = 0
"""


class Server:
    """A gateway or null-responder process, with its CPU time and memory."""

    def __init__(self, args: list[str], port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        wait_listening(port, self.proc)

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def summarize(name: str, st: Stats, server: Server | None, cpu0: float, count: int) -> dict[str, Any]:
    span = max(st.last_ack - st.first_send, 1e-9)
    rspan = max(st.last_receipt - st.first_send, 1e-9)
    out: dict[str, Any] = {
        "scenario": name,
        "count": count,
        "acked": st.acked,
        "refused": {hex(k): v for k, v in st.refused.items()},
        "receipts": st.receipts,
        "submit_msg_s": round(st.acked / span, 1),
        "receipts_s": round(st.receipts / rspan, 1) if st.receipts else 0.0,
        "p50_ms": _ms(pct(st.resp_latency, 50)),
        "p95_ms": _ms(pct(st.resp_latency, 95)),
        "p99_ms": _ms(pct(st.resp_latency, 99)),
        "receipt_p99_ms": _ms(pct(st.receipt_latency, 99)),
    }
    if server is not None:
        out["cpu_s_per_1000"] = round((server.cpu() - cpu0) / max(st.acked, 1) * 1000, 3)
        out["peak_rss_mb"] = round(server.memory("VmHWM") / 2**20, 1)
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def run_scenario(name: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    smpp, http = free_port(), free_port()
    fake: Server | None = None
    if name == "null":
        server = Server(["-m", "smppgw.bench.null", "--port", str(smpp)], smpp)
    elif a.target:
        server = None
        host, _, port = a.target.partition(":")
        smpp = int(port)
    else:
        (workdir / name).mkdir()
        provider = ""
        if name == "S2":
            fport = free_port()
            fake = Server(
                [
                    "-m",
                    "smppgw",
                    "fake-provider",
                    "smspartner",
                    "--port",
                    str(fport),
                    "--latency",
                    str(a.latency),
                    "--option",
                    "api_key=bench-key",
                    "--option",
                    "delay=0",
                ],
                fport,
            )
            provider = HTTP_PROVIDER.format(port=fport)
        cfg = gateway_config(workdir / name, smpp, http, a.durability, provider)
        server = Server(["-m", "smppgw", "serve", "--config", str(cfg)], smpp)
    try:
        cpu0 = server.cpu() if server else 0.0
        if name == "S4":
            return asyncio.run(_idle(a, smpp, server))
        rate = a.rate if name == "S3" else None
        count = min(a.count, int(a.rate * 10)) if name == "S3" else a.count
        st = asyncio.run(
            run_load(
                "127.0.0.1",
                smpp,
                count,
                a.connections,
                a.window,
                mix=name == "S5",
                rate=rate,
                texts=1 if name == "S2" else 6,  # S2: one campaign text, as bulk traffic through a batch API
                timeout=a.timeout,
                system_id=a.system_id,
                password=a.password,
            )
        )
        return summarize(name, st, server, cpu0, count)
    finally:
        if server is not None:
            server.stop()
        if fake is not None:
            fake.stop()


async def _idle(a: argparse.Namespace, port: int, server: Server | None) -> dict[str, Any]:
    before = server.memory("VmRSS") if server else 0
    conns = await hold_idle("127.0.0.1", port, a.sessions, a.system_id, a.password)
    await asyncio.sleep(1.0)  # let the gateway settle before reading its memory
    after = server.memory("VmRSS") if server else 0
    for c in conns:
        await c.close()
    return {
        "scenario": "S4",
        "sessions": len(conns),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "kb_per_session": round((after - before) / 1024 / len(conns), 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "scenario",
        "acked",
        "receipts",
        "submit_msg_s",
        "receipts_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "receipt_p99_ms",
        "cpu_s_per_1000",
        "peak_rss_mb",
        "kb_per_session",
    ]
    lines = [" | ".join(cols)]
    for r in rows:
        lines.append(" | ".join("-" if r.get(c) is None else str(r.get(c)) for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="smppgw bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("scenarios", nargs="*", default=list(ALL), help=f"some of {', '.join(ALL)} (default: all)")
    p.add_argument("--count", type=int, default=20_000, help="messages per scenario (default %(default)s)")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--window", type=int, default=200, help="outstanding submit_sm per connection")
    p.add_argument("--rate", type=float, default=2000.0, help="S3 offered rate, msg/s")
    p.add_argument("--sessions", type=int, default=1000, help="S4 idle sessions")
    p.add_argument(
        "--latency", type=float, default=0.05, help="S2: seconds the fake provider adds per request"
    )
    p.add_argument("--durability", choices=("normal", "fsync"), default="normal")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a scenario may take at most")
    p.add_argument("--target", help="host:port of a running gateway instead of starting one")
    p.add_argument("--system-id", default="bench")
    p.add_argument("--password", default="bench")
    a = p.parse_args(argv)
    unknown = [s for s in a.scenarios if s not in ALL]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; choose from {', '.join(ALL)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        for name in a.scenarios:
            rows.append(run_scenario(name, a, Path(tmp)))
            print(f"{name}: done", file=sys.stderr, flush=True)
    print(table(rows))
    print(
        json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "results": rows})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
