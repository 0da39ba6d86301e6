"""The benchmark runs end to end at a small size and reports every message and receipt.
(No timing is asserted: numbers belong in the README, not in tests.)"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_runs_scenarios_and_prints_a_json_summary():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "smppgw",
            "bench",
            "null",
            "S1",
            "S5",
            "S4",
            "--count",
            "300",
            "--sessions",
            "20",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    table, summary = r.stdout.strip().splitlines()[:-1], json.loads(r.stdout.strip().splitlines()[-1])
    assert table[0].startswith("scenario | gateway | acked | receipts")
    results = {row["scenario"]: row for row in summary["results"]}
    for name in ("null", "S1", "S5"):
        assert results[name]["acked"] == 300 and results[name]["receipts"] == 300, results[name]
        assert results[name]["submit_msg_s"] > 0 and results[name]["p99_ms"] is not None
    assert results["S1"]["cpu_s_per_1000"] is not None and results["S1"]["peak_rss_mb"] > 0
    assert results["S4"]["sessions"] == 20
