"""A bench run measured: the load driven (and the load generator's own CPU), and the row it
makes: rates, latency percentiles, CPU per 1,000 messages, and the rate at which every process
of the run would keep this machine's cores busy."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from smppgw.bench.loadgen import Stats, run_load
from smppgw.bench.procs import Server, loadgen_cpu, thread_split


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
        "p50_ms": ms(pct(st.resp_latency, 50)),
        "p95_ms": ms(pct(st.resp_latency, 95)),
        "p99_ms": ms(pct(st.resp_latency, 99)),
        "receipt_p50_ms": ms(pct(st.receipt_latency, 50)),
        "receipt_p99_ms": ms(pct(st.receipt_latency, 99)),
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


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def drive(
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
