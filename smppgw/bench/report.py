"""Rows into results: the median of repeated runs, the ratios current/other, the text tables."""

from __future__ import annotations

import statistics
from typing import Any

COLUMNS = [
    "scenario",
    "gateway",
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


def compare(rows: list[dict[str, Any]], base: str = "current") -> list[dict[str, Any]]:
    """For each scenario, the `base` gateway's row against every other gateway's row."""
    out = []
    for row in rows:
        if row.get("gateway") != base:
            continue
        for other in rows:
            if other.get("scenario") == row["scenario"] and other.get("gateway") not in (base, None):
                out.append(
                    {
                        "scenario": row["scenario"],
                        "current": row["gateway"],
                        "against": other["gateway"],
                        "against_sha": other.get("gateway_sha", ""),
                        "ratio": {k: ratio(row.get(k), other.get(k)) for k in RATIOS},
                    }
                )
    return out


def table(rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> str:
    cols = [c for c in columns if any(r.get(c) is not None for r in rows)]
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
