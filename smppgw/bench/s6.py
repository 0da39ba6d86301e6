"""S6: S1's load against one and against two gateway processes sharing the bench's Redis."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from smppgw.bench.configs import gateway_config, redis_store, simulator
from smppgw.bench.measure import add_cpu_bound, drive, per_1000, summarize
from smppgw.bench.procs import Server, free_port
from smppgw.bench.redisd import BenchRedis
from smppgw.bench.revs import Gateway


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
            store = redis_store(redis.url, node=f"bench-{i}")
            cfg = gateway_config(
                run_dir, smpp, http, "", simulator(a.provider_delay), 1000, store, f"node{i}.toml"
            )
            servers.append(Server(["-m", "smppgw", "serve", "--config", str(cfg)], smpp, gw.python, gw.root))
        cpu0 = [s.cpu() for s in servers]
        redis0 = redis.cpu()
        st, own = drive(name, a, [s.port for s in servers], a.count, a.window, rate)
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
