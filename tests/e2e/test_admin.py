"""The admin API over real HTTP against a gateway in the test reactor with real smpplib ESMEs:
authentication, the live view after real traffic, a message's record, live config reloads and
provider pause/resume."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest_twisted
import smpplib.exceptions
import smpplib.smpp
from twisted.internet.threads import deferToThread

from smppgw.cli import main as cli_main
from tests.e2e.admin_harness import TOKEN, request, start_from_file, write_config
from tests.e2e.harness import bind_status, connect, gateway_config, http_port, smpp_port, start_app

ROOT = Path(__file__).resolve().parents[2]


def base(app) -> str:
    return f"http://127.0.0.1:{http_port(app)}/admin"


def cli(*args: str, env_token: str = TOKEN) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SMPPGW_ADMIN_TOKEN": env_token}
    return subprocess.run(
        [sys.executable, "-m", "smppgw", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, env=env
    )


@pytest_twisted.ensureDeferred
async def test_admin_calls_need_the_bearer_token_and_an_allowed_peer(tmp_path):
    app = start_app(tmp_path, admin={"token": TOKEN})
    fenced = start_app(tmp_path / "b", admin={"token": TOKEN, "allow": ["10.0.0.0/8"]})
    off = start_app(tmp_path / "c")
    try:
        url = base(app) + "/sessions"
        answers = await deferToThread(
            lambda: {
                "none": request(url, token=None),
                "wrong": request(url, token="x" * len(TOKEN)),
                "basic": request(url, auth=f"Basic {TOKEN}"),
                "right": request(url),
                "outside allow": request(base(fenced) + "/sessions"),
                "off": request(base(off) + "/sessions"),
                "unknown path": request(base(app) + "/nothing"),
                "wrong method": request(base(app) + "/reload"),
            }
        )
    finally:
        for a in (app, fenced, off):
            await a.stop(grace=0.5)
    codes = {k: v[0] for k, v in answers.items()}
    assert codes == {
        "none": 401,
        "wrong": 401,
        "basic": 401,
        "right": 200,
        "outside allow": 403,
        "off": 404,
        "unknown path": 404,
        "wrong method": 405,
    }
    assert all(TOKEN not in str(body) for _, body in answers.values())


@pytest_twisted.ensureDeferred
async def test_live_view_shows_sessions_accounts_and_providers_after_real_traffic(tmp_path):
    app = start_app(
        tmp_path,
        admin={"token": TOKEN},
        accounts={
            "demo": {"password": "demo"},
            "slow": {"password": "slow", "throughput": 0.01, "burst": 1},
        },
    )
    port, url = smpp_port(app), base(app)

    def scenario():
        tx, rx = connect(port, "transmitter"), connect(port, "receiver")
        slow = connect(port, "transmitter", system_id="slow", password="slow")
        try:
            for _ in range(3):
                tx.submit()
            assert tx.pump(lambda: len(tx.resps) == 3)
            assert rx.pump(lambda: len(rx.receipts) == 3)
            rx.sync()  # our deliver_sm_resp answers have reached the gateway
            slow.submit()
            slow.submit()
            assert slow.pump(lambda: len(slow.resps) == 2)
            statuses = sorted(r.status for r in slow.resps)
            return statuses, {k: request(f"{url}/{k}")[1] for k in ("sessions", "accounts", "providers")}
        finally:
            for e in (tx, rx, slow):
                e.close()

    try:
        statuses, views = await deferToThread(scenario)
    finally:
        await app.stop(grace=0.5)
    assert statuses == [0, 0x58]
    sessions = {(s["account"], s["bind"]): s for s in views["sessions"]["sessions"]}
    assert set(sessions) == {("demo", "transmitter"), ("demo", "receiver"), ("slow", "transmitter")}
    tx, rx = sessions["demo", "transmitter"], sessions["demo", "receiver"]
    assert tx["submits_total"] == 3 and tx["submits_per_s"] > 0 and tx["receipts_total"] == 0
    assert rx["receipts_total"] == 3 and rx["receipts_per_s"] > 0 and rx["submits_total"] == 0
    assert rx["window"] == {"in_use": 0, "from_esme": 0, "to_esme": 0, "size": 100}
    assert tx["peer"].startswith("127.0.0.1:") and tx["bound_since"].endswith("Z")
    accounts = {a["account"]: a for a in views["accounts"]["accounts"]}
    assert accounts["demo"]["bound"] == {"transmitter": 1, "receiver": 1, "transceiver": 0}
    assert accounts["demo"]["outbox_depth"] == 0 and accounts["demo"]["oldest_receipt_age_s"] is None
    assert accounts["demo"]["throttle"] == {"throughput": 0.0, "burst": 0.0, "tokens": None, "refusals": 0}
    assert accounts["slow"]["throttle"]["refusals"] == 1
    assert accounts["slow"]["throttle"]["tokens"] < 1
    assert accounts["slow"]["bound"] == {"transmitter": 1, "receiver": 0, "transceiver": 0}
    (sim,) = views["providers"]["providers"]
    assert sim["provider"] == "sim" and sim["type"] == "simulator"
    assert (sim["circuit"], sim["paused"], sim["in_flight"], sim["queue"]) == ("closed", False, 0, 0)
    assert sim["messages_sent"] == 4 and sim["requests_total"] >= 2 and sim["last_error"] is None


@pytest_twisted.ensureDeferred
async def test_message_record_and_trail_by_id_and_the_message_command(tmp_path):
    app = start_app(tmp_path, admin={"token": TOKEN})
    port, url = smpp_port(app), base(app)

    def scenario():
        esme = connect(port)
        try:
            esme.submit()
            assert esme.pump(lambda: esme.receipts)
            esme.sync()
            mid = esme.resps[0].message_id.decode()
            return mid, request(f"{url}/messages/{mid}"), request(f"{url}/messages/nope")
        finally:
            esme.close()

    try:
        mid, (status, body), (missing, missing_body) = await deferToThread(scenario)
        shown = await deferToThread(cli, "message", mid, "--url", f"http://127.0.0.1:{http_port(app)}")
    finally:
        await app.stop(grace=0.5)
    assert status == 200
    m = body["message"]
    assert (m["id"], m["account"], m["state_name"], m["provider"]) == (mid, "demo", "DELIVRD", "sim")
    assert m["submitted_at_utc"].endswith("Z") and isinstance(body["trail"], list)
    assert (missing, missing_body["error"]) == (404, "no such message")
    assert shown.returncode == 0, shown.stderr
    assert f"Message {mid}" in shown.stdout and "DELIVRD" in shown.stdout and "Trail (" in shown.stdout


@pytest_twisted.ensureDeferred
async def test_reload_with_a_new_password_keeps_the_bound_session_and_refuses_the_old_one(tmp_path):
    data = gateway_config(tmp_path, admin={"token": TOKEN})
    path = write_config(tmp_path / "gw.toml", data)
    app = start_from_file(path)
    port, url = smpp_port(app), base(app)

    def scenario():
        esme = connect(port, "transmitter")
        try:
            esme.submit()
            assert esme.pump(lambda: len(esme.resps) == 1)
            data["accounts"]["demo"]["password"] = "n3wpass"
            data["server"]["window"] = 50
            data["http"]["port"] = 1  # cannot change live: reported, ignored
            write_config(path, data)
            answer = request(f"{url}/reload", "POST")
            esme.submit()  # the old session stays bound and keeps submitting
            assert esme.pump(lambda: len(esme.resps) == 2)
            binds = {
                "old": bind_status(port, password="demo"),
                "new": bind_status(port, password="n3wpass"),
            }
            return answer, [r.status for r in esme.resps], binds
        finally:
            esme.close()

    try:
        (status, answer), resps, binds = await deferToThread(scenario)
    finally:
        await app.stop(grace=0.5)
    assert status == 200 and answer["applied"] is True
    assert "accounts.demo.password" in answer["changed"] and "server.window" in answer["changed"]
    assert answer["needs_restart"] == ["http.port"]
    assert "n3wpass" not in str(answer)
    assert resps == [0, 0]
    assert binds == {"old": 0x0E, "new": 0}


@pytest_twisted.ensureDeferred
async def test_reload_of_a_broken_file_answers_the_check_config_error_and_keeps_the_old_config(
    tmp_path, capsys
):
    data = gateway_config(tmp_path, admin={"token": TOKEN})
    path = write_config(tmp_path / "gw.toml", data)
    app = start_from_file(path)
    port, url = smpp_port(app), base(app)
    checks = {}
    for key, broken in (
        ("max_binds", {"accounts": {**data["accounts"], "demo": {"password": "x", "max_binds": "ten"}}}),
        ("delay", {"providers": {"sim": {**data["providers"]["sim"], "delay": -1}}}),  # the adapter's check
    ):
        write_config(path, {**data, **broken})
        assert cli_main(["check-config", str(path)]) == 2
        checks[key] = capsys.readouterr().err.strip()
        checks[key + " answer"] = await deferToThread(request, f"{url}/reload", "POST")
    try:
        still = await deferToThread(bind_status, port, password="demo")
    finally:
        await app.stop(grace=0.5)
    for key in ("max_binds", "delay"):
        status, body = checks[key + " answer"]
        assert status == 400 and body == {"applied": False, "error": checks[key]}
        assert f"providers.sim.{key}" in checks[key] or f"accounts.demo.{key}" in checks[key]
    assert still == 0 and app.config.accounts["demo"].password == "demo"


@pytest_twisted.ensureDeferred
async def test_pause_moves_traffic_to_the_failover_provider_and_a_lone_provider_waits(tmp_path):
    sim = gateway_config(tmp_path)["providers"]["sim"]
    data = gateway_config(
        tmp_path,
        admin={"token": TOKEN},
        providers={"first": sim, "second": sim, "solo": sim},
        routes=[{"accounts": ["other"], "providers": ["solo"]}, {"providers": ["first", "second"]}],
    )
    app = start_from_file(write_config(tmp_path / "gw.toml", data))
    port, url, http = smpp_port(app), base(app), f"http://127.0.0.1:{http_port(app)}"

    def sent():
        return {p["provider"]: p for p in request(f"{url}/providers")[1]["providers"]}

    def scenario():
        paused = cli("provider", "pause", "first", "--url", http)
        solo = request(f"{url}/providers/solo/pause", "POST")[1]
        demo, other = connect(port), connect(port, system_id="other", password="other1")
        try:
            for _ in range(4):
                demo.submit()
            other.submit()
            other.submit()
            assert demo.pump(lambda: len(demo.receipts) == 4)
            assert other.pump(lambda: len(other.resps) == 2)
            while_paused = sent()
            text = urllib.request.urlopen(f"{http}/metrics", timeout=5).read().decode()
            resumed = request(f"{url}/providers/first/resume", "POST")[1]
            released = request(f"{url}/providers/solo/resume", "POST")[1]
            assert other.pump(lambda: len(other.receipts) == 2)
            demo.submit()
            assert demo.pump(lambda: len(demo.receipts) == 5)
            return paused, solo, while_paused, text, resumed, released, sent()
        finally:
            demo.close()
            other.close()

    try:
        paused, solo, during, text, resumed, released, after = await deferToThread(scenario)
    finally:
        await app.stop(grace=0.5)
    assert paused.returncode == 0, paused.stderr
    assert "paused first" in paused.stdout and "fail over to second" in paused.stdout
    assert solo["routes"] == [{"route": 0, "providers": ["solo"], "messages": "wait for resume"}]
    assert (during["first"]["paused"], during["first"]["messages_sent"]) == (True, 0)
    assert during["second"]["messages_sent"] == 4
    assert (during["solo"]["queue"], during["solo"]["messages_sent"]) == (2, 0)
    assert 'smppgw_provider_paused{provider="first"} 1.0' in text
    assert 'smppgw_provider_paused{provider="second"} 0.0' in text
    assert resumed == {"provider": "first", "paused": False, "released": 0}
    assert released == {"provider": "solo", "paused": False, "released": 2}
    assert after["first"]["messages_sent"] == 1 and after["solo"]["messages_sent"] == 2
    assert after["second"]["messages_sent"] == 4 and not after["first"]["paused"]


@pytest_twisted.ensureDeferred
async def test_reload_adds_and_removes_accounts_and_swaps_adds_and_retires_providers(tmp_path):
    data = gateway_config(tmp_path, admin={"token": TOKEN})
    path = write_config(tmp_path / "gw.toml", data)
    app = start_from_file(path)
    port, url = smpp_port(app), base(app)
    first_sim = app.providers["sim"]

    def providers():
        return {p["provider"]: p for p in request(f"{url}/providers")[1]["providers"]}

    def scenario():
        other = connect(port, system_id="other", password="other1")
        demo = connect(port)
        try:
            sim = data["providers"]["sim"]
            data["accounts"] = {"demo": {"password": "demo"}, "third": {"password": "third"}}
            data["providers"] = {"sim": {**sim, "seed": 2}, "sim2": sim}
            data["routes"] = [{"providers": ["sim2", "sim"]}]
            write_config(path, data)
            first = request(f"{url}/reload", "POST")
            unbind = other.client.read_pdu()  # smpplib does not answer an unbind itself
            other.client.send_pdu(
                smpplib.smpp.make_pdu("unbind_resp", client=other.client, sequence=unbind.sequence)
            )
            demo.submit()
            assert demo.pump(lambda: demo.receipts)
            via_sim2 = providers()
            data["providers"] = {"sim2": sim}
            data["routes"] = [{"providers": ["sim2"]}]
            write_config(path, data)
            second = request(f"{url}/reload", "POST")
            demo.submit()
            assert demo.pump(lambda: len(demo.receipts) == 2)
            binds = {
                "other": bind_status(port, system_id="other", password="other1"),
                "third": bind_status(port, system_id="third", password="third"),
            }
            return first, unbind.command, via_sim2, second, providers(), binds
        finally:
            demo.close()
            other.client.disconnect()

    try:
        (status, first), unbind, via_sim2, (status2, second), after, binds = await deferToThread(scenario)
    finally:
        await app.stop(grace=0.5)
    assert status == 200 and status2 == 200
    assert first["removed"] == ["accounts.other"] and first["sessions_unbound"] == 1
    assert set(first["added"]) == {"accounts.third", "providers.sim2"}
    assert "providers.sim.seed" in first["changed"] and "routes" in first["changed"]
    assert unbind == "unbind"
    assert app.providers["sim"] is not first_sim  # a new adapter for the changed table
    assert first_sim.report_sink is None  # the old one was closed: nothing was in flight
    assert via_sim2["sim2"]["messages_sent"] == 1 and via_sim2["sim"]["messages_sent"] == 0
    assert second["removed"] == ["providers.sim"] and second["retired"] == {"sim": {"moved": 0, "waiting": 0}}
    assert after["sim"]["removed"] is True and after["sim2"]["messages_sent"] == 2
    assert binds == {"other": 0x0F, "third": 0}


@pytest_twisted.ensureDeferred
async def test_admin_on_its_own_listener_is_not_on_the_http_one(tmp_path):
    app = start_app(tmp_path, admin={"token": TOKEN, "host": "127.0.0.1", "port": 0})
    own = f"http://127.0.0.1:{app.admin_port.getHost().port}/admin/providers"
    try:
        on_own, on_http = await deferToThread(lambda: (request(own), request(base(app) + "/providers")))
    finally:
        await app.stop(grace=0.5)
    assert on_own[0] == 200 and on_own[1]["providers"][0]["provider"] == "sim"
    assert on_http[0] == 404
