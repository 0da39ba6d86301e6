"""What deploy/ ships, checked with real parts on loopback: promtool on the alert rules (and
their unit tests on synthetic series), on the Prometheus config and on a live /metrics; a real
Prometheus scraping a gateway and answering through its HTTP API; the Grafana dashboard's and
the alerts' queries against the metric names a live gateway exports; the Dockerfile's
HEALTHCHECK command against a live /healthz.

promtool and prometheus come from Debian's `prometheus` package, which ./scripts/test installs.
Under ./scripts/test (SMPPGW_TEST_STRICT=1) a missing one fails the test; run by hand without
them, the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.e2e.harness import Esme, connect, http_port, smpp_port, start_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "smppgw.json"
ALERT_NAMES = {
    "SmppgwDown",
    "SmppgwStoreUnhealthy",
    "SmppgwNoBoundSessions",
    "SmppgwProviderCircuitOpen",
    "SmppgwProviderErrorRatioHigh",
    "SmppgwReceiptOutboxGrowing",
    "SmppgwReceiptsDropped",
    "SmppgwProviderBalanceLow",
}
PROMETHEUS_OWN = {"up"}  # recorded by Prometheus for every scrape, not exported by the gateway


def program(name: str) -> str:
    path = shutil.which(name)
    if path is not None:
        return path
    why = (
        f"{name} is not on PATH: it comes with Debian's prometheus package "
        "(apt-get install prometheus), which ./scripts/test installs"
    )
    if os.environ.get("SMPPGW_TEST_STRICT"):
        pytest.fail(why)
    pytest.skip(why)


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- metric names: what a live /metrics exports, what a PromQL expression reads ---------------


def exported_names(exposition: str) -> set[str]:
    """Every series name a scrape of this exposition can give: sample names, plus the names of
    declared families that have no sample yet (a labelled counter nobody incremented)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][\w:]*", line).group(0))  # type: ignore[union-attr]
    return names


_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promql_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels, keywords or numbers)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)  # label lists
    e = re.sub(r"\$\w+", "", e)  # Grafana variables
    e = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", "", e)  # numbers
    names = set()
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)(\s*\()?", e):
        if m.group(2) is None and m.group(1).lower() not in _PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_promql_names_finds_metric_names_only():
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(smppgw_a_seconds_bucket{instance=~"$instance"}'
        "[$__rate_interval]))) > 1e-3 and on() (sum(smppgw_b) or sum(smppgw_c_total) * 0) == 0"
        ' unless max without (x) (up{job="smppgw", q="a{b}"}) > 1/60'
    )
    assert promql_names(expr) == {"smppgw_a_seconds_bucket", "smppgw_b", "smppgw_c_total", "up"}


def dashboard() -> tuple[dict[str, Any], list[str], set[str]]:
    """The dashboard, the expressions of its panels, and the metrics its variables query."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    variable_metrics = set()
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+), *\w+\)", var["query"]["query"])
            assert m, var["query"]
            variable_metrics.add(m.group(1))
    return board, exprs, variable_metrics


# -- a gateway with some traffic -------------------------------------------------------------


def traffic(port: int) -> Esme:
    """Submits that end DELIVRD and UNDELIV, one refused; the ESME stays bound."""
    esme = connect(port)
    for dest in ("380501234567", "380501230002", "12"):
        esme.submit(dest=dest)
    assert esme.pump(lambda: len(esme.resps) == 3 and len(esme.receipts) == 2)
    esme.sync()
    return esme


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


@pytest_twisted.async_yield_fixture
async def busy_gateway(tmp_path):
    """A gateway after real traffic, its bound ESME, and its /metrics text."""
    app = start_app(tmp_path)
    esme = await deferToThread(traffic, smpp_port(app))
    text = (await deferToThread(get, f"http://127.0.0.1:{http_port(app)}/metrics")).decode()
    yield app, esme, text
    await deferToThread(esme.close)
    await app.stop(grace=1.0)


# -- promtool ----------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check_rules():
    out = run(program("promtool"), "check", "rules", str(ALERTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in out.stdout


def test_alert_rules_fire_as_their_unit_tests_expect():
    out = run(program("promtool"), "test", "rules", str(ROOT / "tests" / "deploy" / "alerts_test.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_prometheus_config_passes_promtool_check_config():
    out = run(program("promtool"), "check", "config", str(PROMETHEUS_YML))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is valid prometheus config file syntax" in out.stdout
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in out.stdout  # it loads alerts.yml beside it


@pytest_twisted.ensureDeferred
async def test_live_metrics_pass_promtool_check_metrics(busy_gateway):
    _, _, text = busy_gateway
    assert 'smppgw_messages_total{account="demo",provider="sim",state="DELIVRD"} 1.0' in text
    out = run(program("promtool"), "check", "metrics", stdin=text)
    # exit 0 and no lint remark (promtool prints one line per problem it finds)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


# -- the dashboard and the alerts against what the gateway exports ----------------------------


@pytest_twisted.ensureDeferred
async def test_dashboard_queries_only_metrics_a_live_gateway_exports(busy_gateway):
    _, _, text = busy_gateway
    exported = exported_names(text)
    board, exprs, variable_metrics = dashboard()
    queried = set().union(*map(promql_names, exprs)) | variable_metrics
    assert queried - exported == set()
    # what the dashboard is for: traffic, latency, receipts, outbox, providers, balances, sessions
    assert {
        "smppgw_messages_total",
        "smppgw_submit_latency_seconds_bucket",
        "smppgw_receipts_total",
        "smppgw_receipt_outbox",
        "smppgw_provider_requests_total",
        "smppgw_provider_circuit_open",
        "smppgw_provider_balance",
        "smppgw_bound_sessions",
    } <= queried
    # provisionable: one uid, the data source a variable, every panel reading through it
    assert board["uid"] == "smppgw"
    assert {"name": "datasource", "type": "datasource", "query": "prometheus"}.items() <= board["templating"][
        "list"
    ][0].items()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in board["panels"])


def test_compose_mounts_files_that_exist():
    compose = (DEPLOY / "compose.yaml").read_text()
    mounts = re.findall(r"^\s*- \./(\S+?):/", compose, re.M)
    assert {"gateway.toml", "prometheus", "grafana/provisioning", "grafana/smppgw.json"} <= set(mounts)
    assert all((DEPLOY / m).exists() for m in mounts)
    assert (ROOT / "Dockerfile").exists() and "context: .." in compose


# -- a real Prometheus -----------------------------------------------------------------------


def prometheus_config(tmp_path: Path, gateway_http: int) -> Path:
    """deploy/prometheus/prometheus.yml aimed at the test's gateway, scraping every second."""
    text = PROMETHEUS_YML.read_text()
    for old, new in (
        ('"gateway:8080"', f'"127.0.0.1:{gateway_http}"'),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    return path


class PrometheusApi:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}" if params else self.base + path
        try:
            body = json.loads(get(url))
        except urllib.error.HTTPError as e:  # e.g. 400 for a query it cannot parse: say which and why
            raise AssertionError(f"Prometheus {path} {params}: {e.code} {e.read().decode()}") from e
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def until(self, what: str, check: Any, timeout: float = 30.0) -> Any:
        """Poll until `check()` gives something truthy; I/O waiting with a deadline."""
        end = time.monotonic() + timeout
        while True:
            try:
                got = check()
            except urllib.error.URLError:  # not listening yet, or 503 until it is ready
                got = None
            if got:
                return got
            if time.monotonic() > end:
                raise AssertionError(f"Prometheus: no {what} within {timeout} s")
            time.sleep(0.1)


@pytest_twisted.ensureDeferred
async def test_prometheus_scrapes_the_gateway_and_evaluates_the_alerts_and_dashboard(busy_gateway, tmp_path):
    app, _, text = busy_gateway
    exported = exported_names(text)
    prometheus, http, port = program("prometheus"), http_port(app), free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={prometheus_config(tmp_path, http)}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = PrometheusApi(port)
    _, exprs, _ = dashboard()

    def scenario() -> None:
        api.until("readiness", lambda: get(f"{api.base}/-/ready"))
        # a series read back: the gateway's count of accepted messages, as scraped
        accepted = api.until(
            "series smppgw_messages_total",
            lambda: api.query('smppgw_messages_total{job="smppgw",state="accepted"}'),
        )
        assert [(s["metric"]["account"], s["value"][1]) for s in accepted] == [("demo", "2")]
        assert [s["value"][1] for s in api.query('up{job="smppgw"}')] == ["1"]
        assert [s["value"][1] for s in api.query("smppgw_bound_sessions")] == ["1"]

        # every alert loaded and evaluated without error against the real series
        def evaluated() -> list[dict[str, Any]] | None:
            rules = [r for g in api.get("/api/v1/rules")["groups"] for r in g["rules"]]
            failed = {r["name"]: r.get("lastError") for r in rules if r["health"] == "err"}
            assert not failed, failed
            return rules if rules and all(r["health"] == "ok" for r in rules) else None

        rules = api.until("evaluation of every rule", evaluated)
        assert {r["name"] for r in rules} == ALERT_NAMES
        queried = set().union(*(promql_names(r["query"]) for r in rules))
        assert queried - exported == PROMETHEUS_OWN
        assert not [r["name"] for r in rules if r["state"] == "firing"]
        # every dashboard query is PromQL this Prometheus evaluates, and the instance variable
        # lists the gateway
        for expr in exprs:
            api.query(expr.replace("$__rate_interval", "1m").replace("$instance", ".*"))
        instances = api.get("/api/v1/label/instance/values", **{"match[]": "smppgw_store_up"})
        assert instances == [f"127.0.0.1:{http}"]

    try:
        await deferToThread(scenario)
    except AssertionError as e:
        log.flush()
        said = (tmp_path / "prometheus.log").read_text()
        raise AssertionError(f"{e}\n--- prometheus log ---\n{said}") from e
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# -- the Dockerfile's HEALTHCHECK --------------------------------------------------------------


def healthcheck_argv() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(ln for ln in dockerfile.splitlines() if ln.startswith("HEALTHCHECK "))
    argv = json.loads(line.split(" CMD ", 1)[1])
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


@pytest_twisted.ensureDeferred
async def test_the_dockerfile_healthcheck_passes_on_a_healthy_gateway_and_fails_on_a_dead_store(tmp_path):
    app = start_app(tmp_path)
    env = {**os.environ, "SMPPGW_HEALTHZ": f"http://127.0.0.1:{http_port(app)}/healthz"}

    def check() -> int:
        return subprocess.run(healthcheck_argv(), env=env, capture_output=True, timeout=30).returncode

    try:
        assert await deferToThread(check) == 0
        app.store.close()  # the writer thread is gone: /healthz answers 503
        assert await deferToThread(check) == 1
    finally:
        await app.stop(grace=1.0)
