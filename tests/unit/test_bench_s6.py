"""The benchmark on the Redis store: S6 (1 node against 2 nodes sharing the bench's own
redis-server) and `--store sqlite,redis`, at a small size; the rows, ratios and configs they
make. (No timing is asserted.)"""

import json
import subprocess
import sys
from pathlib import Path

from smppgw import config
from smppgw.bench import report
from smppgw.bench.configs import gateway_config, redis_store, simulator

ROOT = Path(__file__).resolve().parents[2]


def test_s6_and_both_stores_run_and_report_every_process(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "smppgw", "bench", "S6", "S1", "--store", "sqlite,redis",
         "--count", "300", "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    rows = {(row["scenario"], row.get("store")): row for row in summary["results"]}
    one, two = rows[("S6 1 node", "redis")], rows[("S6 2 nodes", "redis")]
    for row in (one, two, rows[("S1", "sqlite")], rows[("S1", "redis")]):
        assert row["acked"] == 300 and row["receipts"] == 300, row
        assert row["loadgen_cpu_s_per_1000"] >= 0
    assert one["nodes"] == 1 and "cpu_s_per_1000_node2" not in one
    assert two["nodes"] == 2 and two["cpu_s_per_1000_node1"] >= 0 and two["cpu_s_per_1000_node2"] >= 0
    nodes = two["cpu_s_per_1000_node1"] + two["cpu_s_per_1000_node2"]
    assert abs(two["cpu_s_per_1000"] - nodes) <= 0.002  # all the nodes together (each rounded)
    for row in (one, two, rows[("S1", "redis")]):
        assert row["redis_cpu_s_per_1000"] >= 0
    assert two["cpu_bound_msg_s"] > 0 and two["all_cpu_s_per_1000"] >= two["cpu_s_per_1000"]
    assert "writer_cpu_share" in rows[("S1", "sqlite")] and "writer_cpu_share" not in rows[("S1", "redis")]
    (scale,) = summary["scaling"]
    assert scale["side"] == "current"
    assert scale["ratio"]["submit_msg_s"] == round(two["submit_msg_s"] / one["submit_msg_s"], 3)
    (comp,) = summary["comparisons"]
    assert (comp["scenario"], comp["current"], comp["against"]) == ("S1", "current sqlite", "current redis")
    assert "S6 2 nodes / 1 node" in r.stdout and "S1 | current sqlite/current redis |" in r.stdout
    assert "S6 2 nodes [current] run 1/1: done" in r.stderr


def test_the_redis_configs_the_bench_writes_load(tmp_path):
    store = redis_store("redis://127.0.0.1:6390/0", "bench-x:", node="bench-2")
    cfg = config.load(gateway_config(tmp_path, 2775, 8080, "normal", simulator(), 1000, store, "n.toml"))
    assert (cfg.store.type, cfg.store.key_prefix, cfg.store.node) == ("redis", "bench-x:", "bench-2")
    assert cfg.store.url == "redis://127.0.0.1:6390/0"


def test_scaling_is_two_nodes_over_one_per_side_with_the_cpu_bound():
    rows = [
        {"scenario": "S6 1 node", "gateway": "current", "submit_msg_s": 100.0, "receipts_s": 90.0,
         "cpu_s_per_1000": 0.1},
        {"scenario": "S6 2 nodes", "gateway": "current", "submit_msg_s": 150.0, "receipts_s": 180.0,
         "cpu_s_per_1000": 0.12, "cpu_bound_msg_s": 160},
        {"scenario": "S6 1 node", "gateway": "abc", "submit_msg_s": 50.0, "receipts_s": 50.0,
         "cpu_s_per_1000": 0.2},
    ]  # fmt: skip
    (scale,) = report.scaling(rows)  # "abc" has no 2-node row
    assert scale == {
        "side": "current",
        "ratio": {"submit_msg_s": 1.5, "receipts_s": 2.0, "cpu_s_per_1000": 1.2},
        "cpu_bound_ratio": 1.6,
    }
    assert "current | 1.500 | 2.000 | 1.200 | 1.600" in report.scaling_table([scale])


def test_compare_uses_the_side_when_stores_are_compared():
    rows = [
        {"scenario": "S1", "gateway": "current", "side": "current sqlite", "submit_msg_s": 120.0},
        {"scenario": "S1", "gateway": "current", "side": "current redis", "submit_msg_s": 100.0},
        {"scenario": "null", "submit_msg_s": 1000.0},
    ]
    (comp,) = report.compare(rows)
    assert (comp["current"], comp["against"], comp["ratio"]["submit_msg_s"]) == (
        "current sqlite", "current redis", 1.2)  # fmt: skip
