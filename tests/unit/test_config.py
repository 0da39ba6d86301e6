import subprocess
import sys
from pathlib import Path

import pytest

from smppgw import config as cfg

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
[accounts.demo]
password = "demo"
[providers.sim]
type = "simulator"
"""


def write(tmp_path, text):
    p = tmp_path / "gw.toml"
    p.write_text(text)
    return p


def test_example_config_loads_with_demo_account_and_simulator_route():
    c = cfg.load(ROOT / "conf" / "gateway.toml")
    assert c.server.port == 2775 and c.http.port == 8080
    assert c.accounts["demo"].password == "demo"
    assert c.providers["sim"].type == "simulator"
    assert c.routes[0].providers == ("sim",)
    assert c.store.path == "var/smppgw.db"


def test_minimal_config_gets_defaults_and_a_default_route(tmp_path):
    c = cfg.load(write(tmp_path, MINIMAL))
    assert c.server.enquire_link_interval == 60.0
    assert c.routes == (cfg.Route(("sim",)),)


@pytest.mark.parametrize(
    "text, key, expected",
    [
        (MINIMAL + "[server]\nport = 'x'\n", "server.port", "a TCP port"),
        (MINIMAL + "[server]\nport = 70000\n", "server.port", "a TCP port (0-65535), got 70000"),
        (MINIMAL + "[server]\nwindow = 0\n", "server.window", "greater than 0"),
        (MINIMAL + "[server]\nprot = 1\n", "server.prot", "no such key"),
        (MINIMAL + "[store]\ndurability = 'sometimes'\n", "store.durability", "'normal', 'fsync'"),
        ("[providers.sim]\ntype='simulator'\n", "accounts", "at least one"),
        ("[accounts.demo]\npassword='x'\n", "providers", "at least one"),
        (MINIMAL.replace('type = "simulator"', 'type = "carrier-pigeon"'), "providers.sim.type", "one of"),
        (MINIMAL + "[[routes]]\nproviders = ['nope']\n", "routes[0].providers", "got 'nope'"),
        (MINIMAL + "[[routes]]\nproviders = ['sim']\nprefixes = ['38a']\n", "routes[0].prefixes", "digits"),
        (
            "[accounts.demo]\nmax_binds=1\n[providers.sim]\ntype='simulator'\n",
            "accounts.demo.password",
            "password",
        ),
        (MINIMAL.replace('"demo"', '"muchtoolongpassword"'), "accounts.demo.password", "1 to 8"),
        ("x = = 1", "(syntax)", "valid TOML"),
        (MINIMAL + "[admin]\nallow = ['10.0.0.0/8']\n", "admin.token", "the admin API is off without one"),
        (MINIMAL + "[admin]\ntoken = 'short'\n", "admin.token", "at least 16 printable characters"),
        (MINIMAL + "[admin]\ntoken = 'x' \n allow = ['10.0.0.300/8']\n", "admin.allow", "got '10.0.0.300/8'"),
        (MINIMAL + f"[admin]\ntoken = '{'t' * 20}'\nport = 99999\n", "admin.port", "a TCP port"),
        (MINIMAL + f"[admin]\ntoken = '{'t' * 20}'\ntokn = 1\n", "admin.tokn", "no such key"),
    ],
)
def test_config_errors_name_file_key_and_expectation(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path)
    assert err.value.key == key
    assert expected in err.value.expected
    assert str(path) in str(err.value)


def test_env_interpolation_and_missing_variable_named_without_value(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_PW", "s3cret")
    c = cfg.load(write(tmp_path, MINIMAL.replace('"demo"', '"${GW_TEST_PW}"')))
    assert c.accounts["demo"].password == "s3cret"
    assert "s3cret" not in repr(c.accounts["demo"])
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(write(tmp_path, MINIMAL.replace('"demo"', '"${GW_TEST_MISSING}"')))
    assert err.value.key == "accounts.demo.password"
    assert "GW_TEST_MISSING" in err.value.expected


def test_admin_is_off_by_default_and_its_token_comes_from_the_environment(tmp_path, monkeypatch):
    assert cfg.load(write(tmp_path, MINIMAL)).admin == cfg.AdminConfig()
    monkeypatch.setenv("GW_TEST_ADMIN", "a-long-enough-admin-token")
    text = MINIMAL + '[admin]\ntoken = "${GW_TEST_ADMIN}"\nallow = ["127.0.0.1", "10.0.0.0/8"]\nport = 0\n'
    c = cfg.load(write(tmp_path, text))
    assert c.admin.token == "a-long-enough-admin-token" and c.admin.port == 0
    assert c.admin.allow == ("127.0.0.1", "10.0.0.0/8") and c.admin.host == "127.0.0.1"
    assert "a-long-enough" not in repr(c.admin)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(write(tmp_path, MINIMAL + "[admin]\ntoken = 'not enough'\n"))
    assert "not enough" not in str(err.value)


def test_wrong_type_of_secret_is_reported_without_its_value(tmp_path):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(write(tmp_path, MINIMAL.replace('"demo"', "12345678")))
    assert "12345678" not in str(err.value)


def run_cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "smppgw", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_check_config_exits_2_and_names_file_and_key(tmp_path):
    bad = write(tmp_path, MINIMAL + "[server]\nport = 'x'\n")
    r = run_cli("check-config", str(bad))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "server.port" in r.stderr
    ok = run_cli("check-config", "conf/gateway.toml")
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout


def test_check_config_reports_bad_simulator_options(tmp_path):
    bad = write(tmp_path, MINIMAL + "outcomes = { DELIVERED = 1 }\n")
    r = run_cli("check-config", str(bad))
    assert r.returncode == 2
    assert "providers.sim.outcomes" in r.stderr


def test_help_lists_the_commands():
    r = run_cli("--help")
    for command in ("serve", "check-config", "hash-password", "fake-provider"):
        assert command in r.stdout


def test_hash_password_output_is_accepted_by_config_and_checker(tmp_path):
    r = run_cli("hash-password", "--stdin", stdin="pw1234\n")
    assert r.returncode == 0, r.stderr
    hashed = r.stdout.strip()
    assert hashed.startswith("pbkdf2_sha256$") and "pw1234" not in hashed
    c = cfg.load(write(tmp_path, MINIMAL.replace('"demo"', f'"{hashed}"')))
    from smppgw.gateway.passwords import PasswordChecker

    checker = PasswordChecker()
    assert checker.check(c.accounts["demo"].password, "pw1234")
    assert not checker.check(c.accounts["demo"].password, "pw12345")
    assert checker.check(c.accounts["demo"].password, "pw1234")  # cached path


def test_example_config_across_the_fakes_is_valid():
    r = run_cli("check-config", "conf/examples/fakes.toml")
    assert r.returncode == 0, r.stderr
    assert "5 provider(s), 4 route(s)" in r.stdout


def test_provider_limits_from_the_config_must_be_positive(tmp_path):
    bad = write(tmp_path, MINIMAL + "max_concurrency = 0\n")
    r = run_cli("check-config", str(bad))
    assert r.returncode == 2 and "providers.sim.max_concurrency" in r.stderr


def test_fake_provider_command_serves_until_stopped():
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smppgw",
            "fake-provider",
            "smsclub",
            "--port",
            str(port),
            "--option",
            "token=t1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "fake smsclub provider on" in proc.stdout.readline()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/sms/balance",
            data=b"{}",
            method="POST",
            headers={"Authorization": "Bearer t1", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert "success_request" in json.loads(resp.read())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
