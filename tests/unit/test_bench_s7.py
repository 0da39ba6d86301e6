"""The benchmark's S7 (1 node on a 3-shard Redis Cluster the bench starts, against 1 node on one
redis-server) at a small size: its rows, the CPU of each shard, and the projection it prints.
(No timing is asserted.)"""

import json
import subprocess
import sys
from pathlib import Path

from smppgw.bench import report

ROOT = Path(__file__).resolve().parents[2]


def test_s7_runs_one_node_on_one_redis_and_on_three_shards():
    r = subprocess.run(
        [sys.executable, "-m", "smppgw", "bench", "S7", "--count", "300", "--redis-aof", "everysec",
         "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    rows = {row["store"]: row for row in summary["results"]}
    one, many = rows["redis"], rows["cluster"]
    for row in (one, many):
        assert row["scenario"] == "S7" and row["acked"] == 300 and row["receipts"] == 300, row
        assert row["redis"]["aof_bytes_per_msg"] > 0  # appendonly on both sides
        assert row["all_cpu_s_per_1000"] >= row["cpu_s_per_1000"] + row["redis_cpu_s_per_1000"] - 0.002
    assert one["shards"] == 1 and "redis_cpu_s_per_1000_shards" not in one
    assert many["shards"] == 3 and len(many["redis_cpu_s_per_1000_shards"]) == 3
    assert abs(sum(many["redis_cpu_s_per_1000_shards"]) - many["redis_cpu_s_per_1000"]) <= 0.004
    (shards,) = summary["shards"]
    assert shards["shards"] == 3
    assert shards["ratio"]["receipts_s"] == round(many["receipts_s"] / one["receipts_s"], 3)
    assert "S7 3 shards / 1 Redis" in r.stdout and "projection: +" in r.stdout


def test_shards_projects_from_the_measured_costs():
    rows = [
        {"scenario": "S7", "gateway": "current", "store": "redis", "submit_msg_s": 100.0,
         "receipts_s": 100.0, "cpu_s_per_1000": 0.1, "redis_cpu_s_per_1000": 0.06, "cpu_bound_msg_s": 9000},
        {"scenario": "S7", "gateway": "current", "store": "cluster", "submit_msg_s": 90.0,
         "receipts_s": 80.0, "cpu_s_per_1000": 0.15, "redis_cpu_s_per_1000": 0.05,
         "redis_cpu_s_per_1000_shards": [0.02, 0.02, 0.01], "cpu_bound_msg_s": 8000},
    ]  # fmt: skip
    (s,) = report.shards(rows)
    assert s["ratio"] == {"submit_msg_s": 0.9, "receipts_s": 0.8, "cpu_s_per_1000": 1.5}
    # 1000 / (0.15 + 0.05); 1000 / 0.02 (the busiest shard); 1000 / 0.05 (one more core of Redis)
    assert s["msg_s_per_added_core"] == 5000
    assert (s["redis_full_at_msg_s"], s["msg_s_per_added_shard"]) == (50000, 20000)
    assert s["busiest_shard_share"] == 0.4
    assert "Redis tier full at 50000 msg/s on 3 shards" in report.shards_table([s])
    assert report.shards(rows[:1]) == []
