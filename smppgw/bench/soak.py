"""`./scripts/bench soak --minutes 30`: a long run at half of the gateway's capacity, with
receipts, bind churn and provider errors, printing the gateway's RSS and latency per minute.

The gateway (SQLite, on free loopback ports) routes every message to a provider that is down
(an SMS Club adapter pointed at a closed port: connection errors, retries, its circuit breaker
opening and probing again) and fails over to the simulator (0.2 s to a mixed final state), so
errors and failovers go on all the time. Four connections offer the load with
registered_delivery 1; a fifth session (an account of its own) binds and unbinds every two
seconds; the load's own sessions bind again every minute. Capacity is measured first against
the same gateway (a 20,000-message run at full speed, also the warm-up) unless `--rate` gives it.

Each minute prints: offered and acknowledged msg/s, receipts, submit->resp p50/p99, receipt
p99, RSS. The summary gives RSS growth after the first minute (the warm-up) and the p99 spread.
The load is bounded: `--minutes` of it, then it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from smppgw.bench.configs import gateway_config
from smppgw.bench.loadgen import Connection, Stats, run_load
from smppgw.bench.measure import pct
from smppgw.bench.procs import Server, free_port

PROVIDERS = """
[accounts.churn]
password = "churn"

[providers.down]
type = "smsclub"
url = "http://127.0.0.1:{closed}"
token = "soak"
timeout = 2
balance_interval = 0
senders_interval = 0

[providers.sim]
type = "simulator"
delay = 0.2
enroute = false
seed = 7
outcomes = {{ DELIVRD = 90, UNDELIV = 5, EXPIRED = 3, REJECTD = 2 }}

[[routes]]
providers = ["down", "sim"]

[dispatch]
max_attempts = 2
breaker_threshold = 5
breaker_cooldown = 5
"""


async def _churn(port: int, stop: asyncio.Event, counted: list[int]) -> None:
    """A session that binds, waits a little and unbinds, every two seconds."""
    while not stop.is_set():
        c = Connection(Stats(), 1, [])
        try:
            await c.open("127.0.0.1", port, "churn", "churn")  # its own account: no receipts
            await asyncio.sleep(0.5)
            await c.close()
            counted[0] += 1
        except OSError:
            pass
        try:
            await asyncio.wait_for(stop.wait(), 1.5)
        except TimeoutError:
            pass


async def _minute(port: int, rate: float, seconds: float, churned: list[int]) -> Stats:
    stop = asyncio.Event()
    churn = asyncio.ensure_future(_churn(port, stop, churned))
    try:
        return await run_load(
            "127.0.0.1", port, int(rate * seconds), 4, 100, rate=rate, rd=1, timeout=seconds + 60
        )
    finally:
        stop.set()
        await churn


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def soak(minutes: int, rate: float | None, seconds: float = 60.0, log: Any = print) -> dict[str, Any]:
    """Run the soak; the per-minute rows and the summary (also what --json prints)."""
    with tempfile.TemporaryDirectory(prefix="smppgw-soak-") as tmp:
        work = Path(tmp)
        smpp, http = free_port(), free_port()
        provider = PROVIDERS.format(closed=free_port())
        cfg = gateway_config(work, smpp, http, "normal", provider=provider, window=100)
        server = Server(["-m", "smppgw", "serve", "--config", str(cfg)], smpp)
        try:
            warm = asyncio.run(run_load("127.0.0.1", smpp, 20_000, 4, 100, rd=1, timeout=180))
            capacity = warm.acked / max(1e-9, warm.last_ack - warm.first_send)
            offered = rate if rate else round(capacity / 2)
            log(f"soak: capacity {capacity:,.0f} msg/s, offering {offered:,.0f} msg/s for {minutes} min")
            rows: list[dict[str, Any]] = []
            churned = [0]
            for minute in range(1, minutes + 1):
                t0 = time.perf_counter()
                st = asyncio.run(_minute(smpp, offered, seconds, churned))
                span = max(1e-9, time.perf_counter() - t0)
                row = {
                    "minute": minute,
                    "offered_msg_s": offered,
                    "acked_msg_s": round(st.acked / max(1e-9, st.last_ack - st.first_send)),
                    "minute_s": round(span, 1),
                    "acked": st.acked,
                    "refused": sum(st.refused.values()),
                    "receipts": st.receipts,
                    "p50_ms": _ms(pct(st.resp_latency, 50)),
                    "p95_ms": _ms(pct(st.resp_latency, 95)),
                    "p99_ms": _ms(pct(st.resp_latency, 99)),
                    "receipt_p99_ms": _ms(pct(st.receipt_latency, 99)),
                    "rss_mb": round(server.memory("VmRSS") / 2**20, 1),
                    "binds_churned": churned[0],
                }
                rows.append(row)
                log(
                    "minute {minute}: {acked_msg_s} msg/s acked ({acked}, refused {refused}), receipts "
                    "{receipts}, p50 {p50_ms} ms, p99 {p99_ms} ms, receipt p99 {receipt_p99_ms} ms, "
                    "RSS {rss_mb} MB, binds churned {binds_churned}".format(**row)
                )
        finally:
            server.stop()
    base = rows[0]["rss_mb"]
    p99s = [r["p99_ms"] for r in rows if r["p99_ms"] is not None]
    summary = {
        "capacity_msg_s": round(capacity),
        "offered_msg_s": offered,
        "minutes": minutes,
        "rss_first_mb": base,
        "rss_last_mb": rows[-1]["rss_mb"],
        "rss_max_mb": max(r["rss_mb"] for r in rows),
        "rss_growth_after_warmup": round((max(r["rss_mb"] for r in rows) - base) / base, 4),
        "p99_ms_min": min(p99s) if p99s else None,
        "p99_ms_max": max(p99s) if p99s else None,
        "all_receipts": all(r["receipts"] >= r["acked"] for r in rows),
    }
    return {"rows": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="smppgw bench soak", description=__doc__)
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--rate", type=float, help="offered msg/s (default: half the measured capacity)")
    a = p.parse_args(argv)
    result = soak(a.minutes, a.rate)
    s = result["summary"]
    print(
        f"soak: RSS {s['rss_first_mb']} -> {s['rss_last_mb']} MB (max {s['rss_max_mb']}, growth after "
        f"minute 1: {s['rss_growth_after_warmup']:.1%}); p99 {s['p99_ms_min']}-{s['p99_ms_max']} ms; "
        f"every receipt back: {s['all_receipts']}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
