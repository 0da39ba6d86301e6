"""`smppgw bench` / `scripts/bench`: start a gateway (or target a running one), drive it with
the load generator, print a table and one JSON object.

Scenarios (bounded in count and time, loopback only):
  S1 ingest   transceivers submit with registered_delivery=1 to the simulator; every receipt back
  S1d         S1 against conf/gateway.toml's simulator and window (1 s delay, mixed outcomes,
              window 100 per session): the receipts/s of the default configuration
  S2 HTTP     one campaign text to distinct numbers through the SMS Partner adapter (batches of up
              to 500 numbers) against its fake provider, a separate process answering 50 ms late
  S3 latency  a fixed offered rate (default 2,000 msg/s); latency percentiles
  S4 idle     1,000 bound sessions; RSS per session
  S5 mix      20% two-part UDH, 20% UCS2
  S6 nodes    S1's load on the Redis store against 1 node and against 2 nodes (two `smppgw serve`
              processes on their own ports sharing one Redis; the load generator spreads its
              connections over both), in turn; the ratio 2 nodes / 1 node, and the CPU per 1,000
              messages of each node, of redis-server and of the load generator
  S7 shards   S1's load against 1 node on a 3-shard Redis Cluster (three primaries the bench starts on
              loopback, with --redis-aof's persistence) and against 1 node on one redis-server, in
              turn; redis-server CPU per message of each shard, and the projection per added core
  null        S1's load against a trivial responder: the load generator's own ceiling

--against REV builds REV's gateway (.bench/rev-<sha>/, reused) and runs every scenario against
both gateways in turn (current, REV, current, REV … with --repeat), with the same load
generator (this checkout's); it prints both rows and the ratios current/REV.
--rate applies to every scenario when given (S3's default is 2,000 msg/s); "50%" means half of
the current gateway's S1 msg/s, measured first in the same run.
--store sqlite,redis runs every gateway scenario on each store in turn (the first listed is the
base of the ratios). Redis scenarios (and S6) use a redis-server the bench starts itself on a
free loopback port (no persistence unless --redis-aof), emptied before every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from smppgw.bench import replay, report, revs
from smppgw.bench.loadgen import Stats, hold_idle, run_load
from smppgw.bench.redisd import AOF, BenchCluster, BenchRedis
from smppgw.bench.revs import Gateway

ALL = ("null", "S1", "S1d", "S2", "S3", "S4", "S5", "S6", "S7")
REDIS = BenchRedis | BenchCluster
STORES = ("sqlite", "redis")
WRITER_COMM = "smppgw-sqlite-w"  # the store's writer thread, as /proc shows it (15 characters)
TCK = os.sysconf("SC_CLK_TCK")


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


def gateway_config(
    workdir: Path,
    smpp: int,
    http: int,
    durability: str,
    provider: str = "",
    window: int = 1000,
    store: str = "",
    name: str = "bench.toml",
) -> Path:
    """A config with only keys that every compared revision knows (an unknown key is an error).
    `store`: the [store] table's body (default: SQLite in workdir with `durability`)."""
    path = workdir / name
    store = store or f'path = "{workdir / "bench.db"}"\ndurability = "{durability}"'
    path.write_text(f"""
[server]
port = {smpp}
window = {window}
[http]
port = {http}
[store]
{store}
[log]
level = "warning"
[accounts.bench]
password = "bench"
max_binds = 2000
{provider or simulator()}
""")
    return path


def redis_store(url: str, prefix: str, node: str = "") -> str:
    """The [store] body of a Redis store (the bench's own redis-server, a key prefix per run)."""
    body = f'type = "redis"\nurl = "{url}"\nkey_prefix = "{prefix}"'
    return body + (f'\nnode = "{node}"' if node else "")


def simulator(delay: float = 0.0) -> str:
    return f"""
[providers.sim]
type = "simulator"
delay = {delay}
enroute = false
"""


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for anything a config holds
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise ValueError(f"no TOML for {v!r}")


def default_simulator(path: Path = revs.ROOT / "conf" / "gateway.toml") -> tuple[str, int, float]:
    """conf/gateway.toml's simulator provider (as TOML), its server window and the delay."""
    conf = tomllib.loads(path.read_text())
    sim = next(p for p in conf["providers"].values() if p.get("type") == "simulator")
    body = "\n".join(f"{k} = {toml_value(v)}" for k, v in sim.items())
    return (
        f"\n[providers.sim]\n{body}\n",
        int(conf["server"].get("window", 100)),
        float(sim.get("delay", 1.0)),
    )


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


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of a process: tid -> (comm, seconds)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / TCK)
    return out


def thread_split(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, Any]:
    """The CPU a run cost the main thread and the store's writer thread.

    Python before 3.14 does not give OS threads their Python names, so unless a thread is called
    WRITER_COMM the writer is taken to be every thread but the main one (the gateway has no
    other threads of its own)."""
    spent = {tid: cpu - before.get(tid, ("", 0.0))[1] for tid, (_, cpu) in after.items()}
    named = [tid for tid, (comm, _) in after.items() if comm.startswith(WRITER_COMM)]
    writer = named or [tid for tid in after if tid != pid]
    total = sum(spent.values())
    w = sum(spent[t] for t in writer)
    return {
        "threads": len(after),
        "main_thread_cpu_s": round(spent.get(pid, 0.0), 2),
        "writer_thread_cpu_s": round(w, 2),
        "writer_cpu_share": round(w / total, 3) if total else None,
        "writer_by": "name" if named else "non-main threads",
    }


class Server:
    """A gateway or null-responder process, with its CPU time and memory."""

    def __init__(
        self, args: list[str], port: int, python: str = sys.executable, cwd: Path | None = None
    ) -> None:
        self.port = port
        # the cwd decides which smppgw `-m` imports: a revision's gateway runs in its own tree
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [python, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=cwd or revs.ROOT,
            env=env,
        )
        wait_listening(port, self.proc)

    def cpu(self) -> float:
        """Its CPU seconds, and its children's (the workers of `serve --workers`)."""
        return sum(_cpu(pid) for pid in [self.proc.pid, *self.children()])

    def children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def wait_children(self, n: int, http: int, timeout: float = 30.0) -> None:
        """`serve --workers n`: until each of its n workers listens on the HTTP port, which a
        worker does once its store is open (the parent listens on the SMPP port before them)."""
        end = time.monotonic() + timeout
        while True:
            kids = self.children()
            if len(kids) >= n and all(_listens(pid, http) for pid in kids):
                return
            if time.monotonic() > end:
                raise SystemExit(f"bench: {n} workers did not start within {timeout:g} s")
            time.sleep(0.1)  # polling another process

    def threads(self) -> dict[int, tuple[str, float]]:
        return thread_cpu(self.proc.pid)

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
            self.proc.wait()


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TCK


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a listening TCP socket on `port` (from /proc, as ss does)."""
    try:
        mine = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            here = int(cols[1].rsplit(":", 1)[1], 16)
            if cols[3] == "0A" and here == port and f"socket:[{cols[9]}]" in mine:  # 0A: LISTEN
                return True
    return False


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def summarize(
    name: str,
    st: Stats,
    server: Server | None,
    cpu0: float,
    count: int,
    threads0: dict[int, tuple[str, float]] | None = None,
    delay: float = 0.0,
) -> dict[str, Any]:
    span = max(st.last_ack - st.first_send, 1e-9)
    # receipts cannot start before the provider's delay: the rate is over the span after it
    rspan = max(st.last_receipt - st.first_send - delay, 1e-9)
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
        "receipt_p50_ms": _ms(pct(st.receipt_latency, 50)),
        "receipt_p99_ms": _ms(pct(st.receipt_latency, 99)),
    }
    if delay and out["receipt_p99_ms"] is not None:
        out["provider_delay_s"] = delay
        out["receipt_p99_over_delay_ms"] = round(out["receipt_p99_ms"] - delay * 1000, 2)
    if server is not None:
        out["cpu_s_per_1000"] = round((server.cpu() - cpu0) / max(st.acked, 1) * 1000, 3)
        out["peak_rss_mb"] = round(server.memory("VmHWM") / 2**20, 1)
        if threads0 is not None:
            out.update(thread_split(server.proc.pid, threads0, server.threads()))
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def loadgen_cpu() -> float:
    """CPU seconds of this process so far: the load generator runs in it, on one thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _drive(
    name: str, a: argparse.Namespace, ports: int | list[int], count: int, window: int, rate: float | None
) -> tuple[Stats, float]:
    """Run the load; the Stats and the load generator's own CPU seconds."""
    cpu0 = loadgen_cpu()
    st = asyncio.run(
        run_load(
            "127.0.0.1",
            ports,
            count,
            a.connections,
            window,
            mix=name == "S5",
            rate=rate,
            texts=1 if name == "S2" else 6,  # S2: one campaign text, as bulk traffic through a batch API
            timeout=a.timeout,
            system_id=a.system_id,
            password=a.password,
        )
    )
    return st, loadgen_cpu() - cpu0


def per_1000(cpu: float, st: Stats) -> float:
    return round(cpu / max(st.acked, 1) * 1000, 3)


def add_cpu_bound(row: dict[str, Any], every: float) -> None:
    """`every`: the CPU s per 1,000 messages of every process of the run; with it, the rate at
    which they would keep all this machine's cores busy (the most it allows)."""
    row["all_cpu_s_per_1000"] = round(every, 3)
    row["cpu_bound_msg_s"] = round((os.cpu_count() or 1) * 1000 / max(every, 1e-9))


def run_scenario(
    name: str,
    a: argparse.Namespace,
    workdir: Path,
    gw: Gateway | None = None,
    rate: float | None = None,
    store: str = "sqlite",
    redis: REDIS | None = None,
    workers: int = 0,
) -> dict[str, Any]:
    """One run of scenario `name` against gateway `gw` (the current checkout's by default), on
    `store` (`redis`: the bench's redis-server, `cluster`: its Redis Cluster, emptied first);
    `workers`: as `serve --workers` (its CPU is the parent's and the workers' together)."""
    gw = gw or revs.current()
    smpp, http = free_port(), free_port()
    fake: Server | None = None
    delay = 0.0
    window = a.window
    if name == "null":
        server = Server(["-m", "smppgw.bench.null", "--port", str(smpp)], smpp)
    elif a.target:
        server = None
        host, _, port = a.target.partition(":")
        smpp = int(port)
    else:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        provider, gw_window = "", 1000
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
        elif name == "S1d":
            provider, gw_window, delay = default_simulator()
            window = min(window, gw_window)  # more outstanding submits would be refused (RMSGQFUL)
        else:
            delay = a.provider_delay
            provider = simulator(delay)
        store_body = ""
        if store in ("redis", "cluster"):
            assert redis is not None
            redis.flush()
            store_body = redis_store(redis.url, f"bench-{run_dir.name}:")
        cfg = gateway_config(run_dir, smpp, http, a.durability, provider, gw_window, store_body)
        argv = ["-m", "smppgw", "serve", "--config", str(cfg)]
        argv += ["--workers", str(workers)] if workers else []
        server = Server(argv, smpp, gw.python, gw.root)
        if workers:
            server.wait_children(workers, http)
    try:
        cpu0 = server.cpu() if server else 0.0
        # the SQLite writer thread's share (the Redis store has no thread of its own)
        threads0 = server.threads() if server and name != "null" and store == "sqlite" else None
        redis0 = redis.cpus() if redis is not None and store in ("redis", "cluster") else None
        stats0 = redis.reset_stats() if redis0 is not None else None  # type: ignore[union-attr]
        if name == "S4":
            row = asyncio.run(_idle(a, smpp, server))
        else:
            if name == "S3":
                rate = rate or 2000.0
            count = min(a.count, int(rate * 10)) if name == "S3" and rate else a.count
            st, own = _drive(name, a, smpp, count, window, rate)
            row = summarize(name, st, server, cpu0, count, threads0, delay)
            row["loadgen_cpu_s_per_1000"] = per_1000(own, st)
            if redis0 is not None:
                assert redis is not None and stats0 is not None
                shards = [c - c0 for c, c0 in zip(redis.cpus(), redis0, strict=True)]
                row["redis_cpu_s_per_1000"] = per_1000(sum(shards), st)
                row["redis"] = redis.breakdown(stats0, st.acked)
                row["shards"] = len(shards)
                if len(shards) > 1:
                    row["redis_cpu_s_per_1000_shards"] = [per_1000(c, st) for c in shards]
                every = row["cpu_s_per_1000"] + row["redis_cpu_s_per_1000"] + row["loadgen_cpu_s_per_1000"]
                add_cpu_bound(row, every)
            if rate:
                row["offered_msg_s"] = round(rate, 1)
        if name != "null" and not a.target:
            row["gateway"], row["gateway_sha"], row["store"] = gw.label, gw.sha, store
        return row
    finally:
        if server is not None:
            server.stop()
        if fake is not None:
            fake.stop()


def s6_name(nodes: int) -> str:
    return f"S6 {nodes} node" + ("s" if nodes > 1 else "")


def run_s6(
    nodes: int,
    a: argparse.Namespace,
    workdir: Path,
    gw: Gateway,
    redis: BenchRedis,
    rate: float | None = None,
) -> dict[str, Any]:
    """S1's load against `nodes` gateway processes sharing the bench's Redis, each on its own
    ports; connection i of the load generator goes to node i mod `nodes`. The CPU of each node,
    of redis-server and of the load generator is given per 1,000 messages of the whole run."""
    name = s6_name(nodes)
    run_dir = Path(tempfile.mkdtemp(prefix=f"S6-{nodes}-", dir=workdir))
    redis.flush()
    servers: list[Server] = []
    try:
        for i in range(1, nodes + 1):
            smpp, http = free_port(), free_port()
            store = redis_store(redis.url, f"bench-{run_dir.name}:", node=f"bench-{i}")
            cfg = gateway_config(
                run_dir, smpp, http, "", simulator(a.provider_delay), 1000, store, f"node{i}.toml"
            )
            servers.append(Server(["-m", "smppgw", "serve", "--config", str(cfg)], smpp, gw.python, gw.root))
        cpu0 = [s.cpu() for s in servers]
        redis0 = redis.cpu()
        st, own = _drive(name, a, [s.port for s in servers], a.count, a.window, rate)
        row = summarize(name, st, None, 0.0, a.count, delay=a.provider_delay)
        spent = [s.cpu() - c for s, c in zip(servers, cpu0, strict=True)]
        row["nodes"] = nodes
        row["cpu_s_per_1000"] = per_1000(sum(spent), st)  # all the gateway processes together
        for i, cpu in enumerate(spent, 1):
            row[f"cpu_s_per_1000_node{i}"] = per_1000(cpu, st)
        row["redis_cpu_s_per_1000"] = per_1000(redis.cpu() - redis0, st)
        row["loadgen_cpu_s_per_1000"] = per_1000(own, st)
        add_cpu_bound(row, per_1000(sum(spent) + (redis.cpu() - redis0) + own, st))
        row["peak_rss_mb"] = round(max(s.memory("VmHWM") for s in servers) / 2**20, 1)
        if rate:
            row["offered_msg_s"] = round(rate, 1)
        row["gateway"], row["gateway_sha"], row["store"] = gw.label, gw.sha, "redis"
        return row
    finally:
        for s in servers:
            s.stop()


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
    return report.table(rows)


def parse_rate(text: str) -> tuple[float | None, float | None]:
    """--rate: (msg/s, None) or, for "50%", (None, 0.5)."""
    if text.endswith("%"):
        share = float(text[:-1]) / 100
        if not 0 < share:
            raise argparse.ArgumentTypeError(f"a share > 0%, got {text}")
        return None, share
    rate = float(text)
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"msg/s > 0, got {text}")
    return rate, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="smppgw bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("scenarios", nargs="*", default=list(ALL), help=f"some of {', '.join(ALL)} (default: all)")
    p.add_argument("--count", type=int, default=20_000, help="messages per scenario (default %(default)s)")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--window", type=int, default=200, help="outstanding submit_sm per connection")
    p.add_argument(
        "--rate",
        type=parse_rate,
        help='offered msg/s for every scenario (S3 alone offers 2,000 without it); "50%%": half of'
        " the current gateway's S1 msg/s, measured first",
    )
    p.add_argument(
        "--provider-delay",
        type=float,
        default=0.0,
        help="seconds the simulator takes to the final status (S1, S3, S5); receipt p99 is also shown"
        " minus this delay",
    )
    p.add_argument("--sessions", type=int, default=1000, help="S4 idle sessions")
    p.add_argument(
        "--latency", type=float, default=0.05, help="S2: seconds the fake provider adds per request"
    )
    p.add_argument("--durability", choices=("normal", "fsync"), default="normal", help="SQLite store")
    p.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="STORE",
        help="sqlite (default) or redis; several (repeated or sqlite,redis) run every scenario on each",
    )
    p.add_argument(
        "--redis-aof",
        choices=AOF,
        default="no",
        help="the bench's redis-server: no AOF (default), or appendonly with appendfsync everysec/always",
    )
    p.add_argument(
        "--workers",
        default="0",
        help="Redis runs as `serve --workers N` (a comma list runs each in turn; 0: one plain process)",
    )
    p.add_argument(
        "--redis-replay",
        type=int,
        default=0,
        metavar="N",
        help="S1 on Redis: one more run recorded (redis-cli monitor) per gateway, its scripts sent again"
        " N times to a redis-server alone: its CPU per message without the other processes beside it",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a scenario may take at most")
    p.add_argument("--target", help="host:port of a running gateway instead of starting one")
    p.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="REV",
        help="also run every scenario against the gateway of git revision REV (repeatable, or a comma list)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario and gateway; the median is shown")
    p.add_argument("--system-id", default="bench")
    p.add_argument("--password", default="bench")
    a = p.parse_args(argv)
    unknown = [s for s in a.scenarios if s not in ALL]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; choose from {', '.join(ALL)}")
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    try:
        a.workers = [int(w) for w in a.workers.split(",") if w]
    except ValueError:
        p.error(f"--workers: numbers, comma-separated, got {a.workers!r}")
    if not a.workers or any(w < 0 for w in a.workers):
        p.error("--workers: 0 or more")
    against = [r for item in a.against for r in item.split(",") if r]
    if against and a.target:
        p.error("--against starts the gateways itself: not with --target")
    stores = list(dict.fromkeys(s for item in a.store or ["sqlite"] for s in item.split(",") if s))
    if not stores or any(s not in STORES for s in stores):
        p.error(f"--store: {', '.join(STORES)} (or both, comma-separated), got {a.store}")
    if a.target and ({"S6", "S7"} & set(a.scenarios) or stores != ["sqlite"]):
        p.error("--target drives one running gateway: not with S6, S7 or --store")
    gateways = [revs.current()] + [
        revs.build(r, log=lambda m: print(m, file=sys.stderr, flush=True)) for r in against
    ]
    rate, share = a.rate or (None, None)
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    replays: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        redis = cluster = None
        if {"S6", "S7"} & set(a.scenarios) or "redis" in stores:
            redis = BenchRedis(Path(tmp) / "redis", a.redis_aof).start()
        if "S7" in a.scenarios:
            cluster = BenchCluster(Path(tmp) / "cluster", a.redis_aof).start()
        try:
            if share is not None:
                capacity = run_scenario("S1", a, Path(tmp), gateways[0], None, stores[0], redis)
                capacity["scenario"] = "S1 capacity"
                rows.append(capacity)
                rate = capacity["submit_msg_s"] * share
                print(
                    f"S1 capacity {capacity['submit_msg_s']} msg/s: offering {rate:.0f}",
                    file=sys.stderr,
                    flush=True,
                )
            for name in a.scenarios:
                rows += _scenario_rows(name, a, Path(tmp), gateways, stores, (redis, cluster), rate, runs)
            if a.redis_replay and "S1" in a.scenarios and redis is not None and "redis" in stores:
                replays = [_replay(a, Path(tmp), gw, rate, redis) for gw in gateways]
        finally:
            for server in (redis, cluster):
                if server is not None:
                    server.stop()
    comparisons = report.compare(rows)
    scaling = report.scaling(rows)
    print(table(rows))
    if comparisons:
        print()
        print(report.ratio_table(comparisons))
    if scaling:
        print()
        print(report.scaling_table(scaling))
    shards = report.shards(rows)
    if shards:
        print()
        print(report.shards_table(shards))
    breakdown = report.redis_table(rows)
    if breakdown:
        print()
        print(breakdown)
    if replays:
        print()
        print(replay.table(replays))
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": rows,
    }
    if comparisons:
        summary["comparisons"] = comparisons
    if scaling:
        summary["scaling"] = scaling
    if shards:
        summary["shards"] = shards
    if a.repeat > 1:
        summary["runs"] = runs
    if replays:
        summary["replay"] = replays
    print(json.dumps(summary))
    return 0


def _replay(
    a: argparse.Namespace, workdir: Path, gw: Gateway, rate: float | None, redis: BenchRedis
) -> dict[str, Any]:
    """One more S1 run on Redis, recorded, and its scripts replayed to a redis-server alone."""
    recorder = replay.Recorder(redis.port, workdir / f"monitor-{gw.sha[:12]}.txt")
    try:
        row = run_scenario("S1", a, workdir, gw, rate, "redis", redis)
    finally:
        commands = recorder.stop()
    print(f"S1 [{gw.label}] recorded: {len(commands)} calls, replaying", file=sys.stderr, flush=True)
    measured = replay.replay(commands, row["acked"], a.redis_aof, a.redis_replay)
    return {"scenario": "S1 replay", "gateway": gw.label, "replay": measured}


def _scenario_rows(
    name: str,
    a: argparse.Namespace,
    workdir: Path,
    gateways: list[Gateway],
    stores: list[str],
    servers: tuple[BenchRedis | None, BenchCluster | None],
    rate: float | None,
    runs: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every run of one scenario: each gateway × store (S6: each gateway × 1 and 2 nodes; S7: the
    current gateway on one Redis and on the Redis Cluster), in turn within each repeat, so that
    drift on a shared machine hits every side alike; one row per side (the median with --repeat)."""
    redis, cluster = servers
    if name == "null" or a.target:
        sides = [(gateways[0], "sqlite", 0, 0)]
    elif name == "S7":  # (an earlier revision may not know Redis Cluster)
        sides = [(gateways[0], "redis", 0, 0), (gateways[0], "cluster", 0, 0)]
    elif name == "S6":
        sides = [(gw, "redis", nodes, 0) for gw in gateways for nodes in (1, 2)]
    else:  # --workers: the Redis store's runs once per count of `serve --workers N`
        counts = {store: a.workers if store == "redis" else [0] for store in stores}
        sides = [(gw, store, 0, w) for gw in gateways for store in stores for w in counts[store]]
    # (S7's two sides are the current gateway's, --against or not: named by their store)
    several = (len(sides) > len(gateways) or name == "S7") and name not in ("null", "S6")
    mine: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    for i in range(a.repeat):
        for gw, store, nodes, workers in sides:
            if nodes:
                assert redis is not None
                row = run_s6(nodes, a, workdir, gw, redis, rate)
            else:
                backend = cluster if store == "cluster" else redis
                row = run_scenario(name, a, workdir, gw, rate, store, backend, workers)
            label = f"{gw.label} {store}" if several else gw.label
            if workers:
                label += f" x{workers}"
                row["workers"] = workers
            if name != "null" and not a.target:
                row["side"] = label
            row["run"] = i + 1
            runs.append(row)
            mine.setdefault((gw.label, store, nodes, workers), []).append(row)
            what = row["scenario"] if nodes else name
            print(f"{what} [{label}] run {i + 1}/{a.repeat}: done", file=sys.stderr, flush=True)
    return [report.median_row(r) if a.repeat > 1 else r[0] for r in mine.values()]


if __name__ == "__main__":
    sys.exit(main())
