"""Rows into results: the median of repeated runs, the ratios base/other (gateway revisions,
stores), S6's 2 nodes / 1 node, S7's shards, the text tables."""

from __future__ import annotations

import statistics
from typing import Any

COLUMNS = [
    "scenario",
    "gateway",
    "store",
    "workers",
    "acked",
    "receipts",
    "submit_msg_s",
    "msg_s_range",
    "receipts_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "receipt_p50_ms",
    "receipt_p99_ms",
    "receipt_p99_over_delay_ms",
    "cpu_s_per_1000",
    "cpu_s_per_1000_node1",
    "cpu_s_per_1000_node2",
    "redis_cpu_s_per_1000",
    "loadgen_cpu_s_per_1000",
    "all_cpu_s_per_1000",
    "cpu_bound_msg_s",
    "writer_cpu_share",
    "peak_rss_mb",
    "kb_per_session",
]
RATIOS = ("submit_msg_s", "receipts_s", "cpu_s_per_1000")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for repeated runs of a (scenario, gateway): the median of each number (over the
    runs that have it), other fields from the first run, and the min–max of submit msg/s."""
    out = dict(runs[0])
    for key in {k for r in runs for k in r}:
        values = [r[key] for r in runs if _number(r.get(key))]
        if values and len(values) == sum(1 for r in runs if key in r and r[key] is not None):
            m = statistics.median(values)
            out[key] = round(m) if all(isinstance(v, int) for v in values) else round(m, 3)
    out["runs"] = len(runs)
    rates = [r["submit_msg_s"] for r in runs if _number(r.get("submit_msg_s"))]
    if len(rates) > 1:
        out["submit_msg_s_min"], out["submit_msg_s_max"] = min(rates), max(rates)
        out["msg_s_range"] = f"{min(rates):.0f}–{max(rates):.0f}"
    return out


def ratio(a: Any, b: Any) -> float | None:
    if not (_number(a) and _number(b)) or not b:
        return None
    return round(a / b, 3)


def side(row: dict[str, Any]) -> str | None:
    """What a row measured: its gateway, and its store when several were compared."""
    return row.get("side") or row.get("gateway")


def compare(rows: list[dict[str, Any]], base: str | None = None) -> list[dict[str, Any]]:
    """For each scenario, the `base` side's row (default: the scenario's first, i.e. the current
    gateway on the first store) against every other side's row."""
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        mine = [r for r in rows if r["scenario"] == scenario and side(r) is not None]
        first = next((r for r in mine if side(r) == base), mine[0] if mine else None)
        for other in mine:
            if other is first or first is None:
                continue
            out.append(
                {
                    "scenario": scenario,
                    "current": side(first),
                    "against": side(other),
                    "against_sha": other.get("gateway_sha", ""),
                    "ratio": {k: ratio(first.get(k), other.get(k)) for k in RATIOS},
                }
            )
    return out


def scaling(
    rows: list[dict[str, Any]], one: str = "S6 1 node", two: str = "S6 2 nodes"
) -> list[dict[str, Any]]:
    """S6: for each side, the 2-node row over the 1-node row."""
    out = []
    for r1 in rows:
        if r1["scenario"] != one:
            continue
        r2 = next((r for r in rows if r["scenario"] == two and side(r) == side(r1)), None)
        if r2 is not None:
            out.append(
                {
                    "side": side(r1),
                    "ratio": {k: ratio(r2.get(k), r1.get(k)) for k in RATIOS},
                    # the most 2 nodes could give here: all cores busy at the 2-node run's CPU cost
                    "cpu_bound_ratio": ratio(r2.get("cpu_bound_msg_s"), r1.get("submit_msg_s")),
                }
            )
    return out


def table(rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> str:
    cols = [c for c in columns if any(r.get(c) is not None for r in rows)]
    if all(r.get("store") in (None, "sqlite") for r in rows):
        cols = [c for c in cols if c != "store"]  # the default store goes without saying
    lines = [" | ".join(cols)]
    for r in rows:
        lines.append(" | ".join("-" if r.get(c) is None else str(r.get(c)) for c in cols))
    return "\n".join(lines)


def ratio_table(comparisons: list[dict[str, Any]]) -> str:
    lines = [" | ".join(["scenario", "current/against", *RATIOS])]
    for c in comparisons:
        if all(v is None for v in c["ratio"].values()):
            continue  # e.g. S4, which measures memory only
        values = ["-" if c["ratio"][k] is None else f"{c['ratio'][k]:.3f}" for k in RATIOS]
        lines.append(" | ".join([c["scenario"], f"{c['current']}/{c['against']}", *values]))
    return "\n".join(lines)


def scaling_table(rows: list[dict[str, Any]]) -> str:
    lines = [" | ".join(["S6 2 nodes / 1 node", *RATIOS, "cpu_bound_ratio"])]
    for r in rows:
        values = [r["ratio"][k] for k in RATIOS] + [r.get("cpu_bound_ratio")]
        lines.append(" | ".join([str(r["side"]), *("-" if v is None else f"{v:.3f}" for v in values)]))
    return "\n".join(lines)


def redis_table(rows: list[dict[str, Any]], top: int = 8) -> str:
    """Where redis-server's time went, per message, for each Redis row: the AOF bytes and the
    commands that took most of its time (a script's own commands are counted inside it too)."""
    lines = []
    for r in rows:
        b = r.get("redis")
        if not b:
            continue
        head = f"{r['scenario']} [{side(r)}] redis-server per message: AOF {b['aof_bytes_per_msg']} bytes"
        lines.append(head)
        for name, v in list(b["commands"].items())[:top]:
            lines.append(f"  {name:<12} {v['calls']:>6} calls {v['us']:>7} us")
    return "\n".join(lines)


def shards(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S7: the Redis Cluster row over the one-Redis row, the redis-server CPU of each shard, and
    what the measured costs project for a machine with more cores: each core added (shared by
    gateway nodes and shards in the measured proportion) carries 1,000 / (gateway + Redis CPU
    s per 1,000) msg/s more; the Redis tier is full when its busiest shard's core is."""
    one = next((r for r in rows if r["scenario"] == "S7" and r.get("store") == "redis"), None)
    many = next((r for r in rows if r["scenario"] == "S7" and r.get("store") == "cluster"), None)
    if one is None or many is None:
        return []
    per_shard = many.get("redis_cpu_s_per_1000_shards") or [many.get("redis_cpu_s_per_1000") or 0.0]
    gateway, redis = many.get("cpu_s_per_1000") or 0.0, many.get("redis_cpu_s_per_1000") or 0.0
    busiest = max(per_shard)
    return [
        {
            "shards": len(per_shard),
            "ratio": {k: ratio(many.get(k), one.get(k)) for k in RATIOS},
            "redis_cpu_s_per_1000_one": one.get("redis_cpu_s_per_1000"),
            "redis_cpu_s_per_1000_cluster": redis,
            "redis_cpu_s_per_1000_shards": per_shard,
            "busiest_shard_share": ratio(busiest, sum(per_shard)),
            "cpu_bound_msg_s_one": one.get("cpu_bound_msg_s"),
            "cpu_bound_msg_s_cluster": many.get("cpu_bound_msg_s"),
            "msg_s_per_added_core": round(1000 / (gateway + redis)) if gateway + redis else None,
            "redis_full_at_msg_s": round(1000 / busiest) if busiest else None,
            # all shards together do `redis` s of work per 1,000 messages: one more core of it
            "msg_s_per_added_shard": round(1000 / redis) if redis else None,
        }
    ]


def shards_table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        values = ["-" if r["ratio"][k] is None else f"{r['ratio'][k]:.3f}" for k in RATIOS]
        lines.append(" | ".join([f"S7 {r['shards']} shards / 1 Redis", *RATIOS]))
        lines.append(" | ".join(["ratio", *values]))
        each = ", ".join(map(str, r["redis_cpu_s_per_1000_shards"]))
        lines.append(
            f"redis-server CPU s per 1,000 msg: one Redis {r['redis_cpu_s_per_1000_one']}, cluster "
            f"{r['redis_cpu_s_per_1000_cluster']} (shards {each}; busiest {r['busiest_shard_share']})"
        )
        lines.append(
            f"this box's cores at these costs: one Redis {r['cpu_bound_msg_s_one']} msg/s, cluster "
            f"{r['cpu_bound_msg_s_cluster']} msg/s (gateway, redis-servers and load generator share them)"
        )
        lines.append(
            f"projection: +{r['msg_s_per_added_core']} msg/s per added core (gateway node + shards); "
            f"Redis tier full at {r['redis_full_at_msg_s']} msg/s on {r['shards']} shards, "
            f"+{r['msg_s_per_added_shard']} msg/s per added shard"
        )
    return "\n".join(lines)
