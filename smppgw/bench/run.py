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
import sys
import tempfile
from pathlib import Path
from typing import Any

from smppgw.bench import replay, report, revs
from smppgw.bench.configs import HTTP_PROVIDER, default_simulator, gateway_config, redis_store, simulator
from smppgw.bench.loadgen import hold_idle
from smppgw.bench.measure import add_cpu_bound, drive, per_1000, summarize
from smppgw.bench.procs import Server, free_port
from smppgw.bench.redisd import AOF, BenchCluster, BenchRedis
from smppgw.bench.revs import Gateway
from smppgw.bench.s6 import run_s6

ALL = ("null", "S1", "S1d", "S2", "S3", "S4", "S5", "S6", "S7")
REDIS = BenchRedis | BenchCluster
STORES = ("sqlite", "redis")


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
            store_body = redis_store(redis.url)
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
            st, own = drive(name, a, smpp, count, window, rate)
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
