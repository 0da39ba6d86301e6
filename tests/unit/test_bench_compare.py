"""The benchmark's comparison pieces: median of repeated runs, ratios against another revision,
the per-thread CPU reader, the configs it writes, and one tiny real --against run.
(No timing is asserted.)"""

import json
import os
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

from smppgw import config
from smppgw.bench import report, revs
from smppgw.bench.configs import HTTP_PROVIDER, default_simulator, gateway_config, simulator
from smppgw.bench.procs import thread_cpu, thread_split

ROOT = Path(__file__).resolve().parents[2]


def row(gateway, msg_s, receipts_s=None, cpu=None, **extra):
    return {
        "scenario": "S1",
        "gateway": gateway,
        "acked": 300,
        "submit_msg_s": msg_s,
        "receipts_s": receipts_s if receipts_s is not None else msg_s,
        "cpu_s_per_1000": cpu,
        "p99_ms": None,
        **extra,
    }


def test_median_row_takes_each_numbers_median_and_the_msg_s_spread():
    m = report.median_row(
        [row("current", 100.0, cpu=0.2), row("current", 300.0, cpu=0.4), row("current", 200.0)]
    )
    assert m["submit_msg_s"] == 200.0 and m["receipts_s"] == 200.0
    assert m["cpu_s_per_1000"] == 0.3  # the runs that have it
    assert m["acked"] == 300 and isinstance(m["acked"], int)
    assert (m["submit_msg_s_min"], m["submit_msg_s_max"], m["msg_s_range"]) == (100.0, 300.0, "100–300")
    assert m["runs"] == 3 and m["p99_ms"] is None and m["gateway"] == "current"


def test_compare_gives_current_over_each_other_revision():
    rows = [
        row("current", 110.0, 90.0, 0.2),
        row("abc123", 100.0, 100.0, 0.25),
        row("def456", 0.0, 45.0, None),
    ]
    comps = report.compare(rows)
    assert [(c["current"], c["against"]) for c in comps] == [("current", "abc123"), ("current", "def456")]
    assert comps[0]["ratio"] == {"submit_msg_s": 1.1, "receipts_s": 0.9, "cpu_s_per_1000": 0.8}
    assert comps[1]["ratio"] == {"submit_msg_s": None, "receipts_s": 2.0, "cpu_s_per_1000": None}
    text = report.ratio_table(comps)
    assert "S1 | current/abc123 | 1.100 | 0.900 | 0.800" in text
    assert "S1 | current/def456 | - | 2.000 | -" in text


def test_thread_cpu_reads_every_thread_of_a_process():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        time.sleep(0.05)
        threads = thread_cpu(os.getpid())
    finally:
        stop.set()
        t.join()
    assert os.getpid() in threads and t.native_id in threads
    assert all(isinstance(comm, str) and cpu >= 0 for comm, cpu in threads.values())


def test_thread_split_finds_the_writer_by_name_or_else_as_the_other_threads():
    before = {10: ("python", 1.0), 11: ("python", 0.5)}
    after = {10: ("python", 4.0), 11: ("python", 1.5)}
    split = thread_split(10, before, after)
    assert split["main_thread_cpu_s"] == 3.0 and split["writer_thread_cpu_s"] == 1.0
    assert split["writer_cpu_share"] == 0.25 and split["writer_by"] == "non-main threads"
    named = thread_split(10, {}, {10: ("python", 3.0), 11: ("other", 1.0), 12: ("smppgw-sqlite-w", 2.0)})
    assert named["writer_thread_cpu_s"] == 2.0 and named["writer_by"] == "name" and named["threads"] == 3


def test_the_configs_the_bench_writes_load(tmp_path):
    provider, window, delay = default_simulator()
    sim = tomllib.loads(provider)["providers"]["sim"]
    assert sim == tomllib.loads((ROOT / "conf/gateway.toml").read_text())["providers"]["sim"]
    assert (window, delay) == (100, 1.0)
    for i, (prov, win) in enumerate(
        [(provider, window), (simulator(0.25), 1000), (HTTP_PROVIDER.format(port=1), 1000)]
    ):
        (tmp_path / str(i)).mkdir()
        cfg = config.load(gateway_config(tmp_path / str(i), 2775, 8080, "normal", prov, win))
        assert cfg.server.window == win


def test_a_built_revision_is_reused_while_its_stamp_is_there(tmp_path):
    sha = revs.resolve("HEAD")
    assert len(sha) == 40
    (tmp_path / f"rev-{sha}").mkdir()
    (tmp_path / f"rev-{sha}" / ".ready").write_text(sha)
    gw = revs.build("HEAD", cache=tmp_path, log=lambda m: (_ for _ in ()).throw(AssertionError(m)))
    assert gw.sha == sha and gw.python == str(tmp_path / f"rev-{sha}" / "venv" / "bin" / "python")
    assert gw.root == tmp_path / f"rev-{sha}" / "src"


def test_against_runs_both_gateways_alternately_and_prints_the_ratio():
    # the revision's gateway is this checkout itself (building a venv would take the test's time)
    code = (
        "import sys; from smppgw.bench import revs, run\n"
        "revs.build = lambda rev, **k: revs.Gateway('HEAD', sys.executable, revs.ROOT, revs.resolve(rev))\n"
        "sys.exit(run.main(sys.argv[1:]))\n"
    )
    args = ["S1", "--count", "300", "--against", "HEAD", "--repeat", "2", "--timeout", "60"]
    r = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    order = [line.split(":")[0] for line in r.stderr.splitlines() if line.startswith("S1 [")]
    assert order == ["S1 [current] run 1/2", "S1 [HEAD] run 1/2", "S1 [current] run 2/2", "S1 [HEAD] run 2/2"]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    rows = {row["gateway"]: row for row in summary["results"]}
    assert set(rows) == {"current", "HEAD"}
    for gw in rows.values():
        assert gw["acked"] == 300 and gw["receipts"] == 300 and gw["runs"] == 2
        assert gw["submit_msg_s_min"] <= gw["submit_msg_s"] <= gw["submit_msg_s_max"]
        assert 0 <= gw["writer_cpu_share"] <= 1
    (comp,) = summary["comparisons"]
    assert comp["against"] == "HEAD"
    assert comp["ratio"]["submit_msg_s"] == round(
        rows["current"]["submit_msg_s"] / rows["HEAD"]["submit_msg_s"], 3
    )
    assert len(summary["runs"]) == 4
    assert "S1 | current/HEAD |" in r.stdout
