"""The soak's two-minute version (`./scripts/bench soak --minutes 30` is the long one): half of
the gateway's measured capacity with receipts, bind churn and a provider that is down (errors,
failovers), against a real `smppgw serve`. RSS stays flat after the first minute, every receipt
comes back, the offered rate is kept and p99 stays steady."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from smppgw.bench.soak import soak


@pytest.mark.slow
def test_two_minutes_at_half_capacity_keep_rss_flat_and_p99_steady():
    lines: list[str] = []
    # a thread of its own: the soak runs its own asyncio loops, and this one is the reactor's
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(soak, 2, None, log=lines.append).result(timeout=600)
    rows, s = result["rows"], result["summary"]
    assert len(rows) == 2 and all(r["refused"] == 0 for r in rows)
    assert s["all_receipts"]  # receipts of every acknowledged message, minute by minute
    assert all(r["acked_msg_s"] >= 0.9 * r["offered_msg_s"] for r in rows), rows  # the rate held
    assert rows[1]["binds_churned"] > rows[0]["binds_churned"] > 20  # binds went on churning
    assert s["rss_growth_after_warmup"] < 0.10, s
    # steady: a gateway that slows down over time moves its p95 with it, so the second minute's
    # p95 stays within 2x of the first's; its p99 within 3x, since one burst of a neighbour on 2
    # shared cores moves the top 1% alone (26.4 ms against 12.9 once, in a full CI run). 5 ms
    # floor: the noise of those cores.
    assert rows[1]["p95_ms"] <= 2 * max(rows[0]["p95_ms"], 5.0), rows
    assert rows[1]["p99_ms"] <= 3 * max(rows[0]["p99_ms"], 5.0), rows
