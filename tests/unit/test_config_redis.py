"""[store] type = "redis": every key checked with an error naming file, key and expectation; a
password in the URL never shown; the shipped configs that use Redis pass check-config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smppgw import config as cfg
from tests.unit.test_config import MINIMAL, ROOT, write


def redis_config(tmp_path, store: str) -> cfg.Config:
    return cfg.load(write(tmp_path, MINIMAL + "[store]\n" + store))


def test_redis_store_keys_and_their_defaults(tmp_path):
    c = redis_config(tmp_path, 'type = "redis"\nurl = "redis://127.0.0.1:6379/2"\nnode = "gw-1"\n').store
    assert (c.type, c.url, c.key_prefix, c.claim_after, c.node) == (
        "redis", "redis://127.0.0.1:6379/2", "smppgw:", 30.0, "gw-1")  # fmt: skip
    assert (c.wait_replicas, c.wait_timeout, c.keep_final) == (0, 1.0, 7 * 86400.0)


def test_redis_url_may_come_from_the_environment_and_its_password_is_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL_T", "redis://:pa55word@10.0.0.5:6380/1")
    c = redis_config(tmp_path, 'type = "redis"\nurl = "${REDIS_URL_T}"\n').store
    assert c.url.endswith("@10.0.0.5:6380/1")
    assert c.where == "redis://:***@10.0.0.5:6380/1" and "pa55word" not in repr(c)
    monkeypatch.setenv("REDIS_URL_T", "http://:pa55word@10.0.0.5/1")
    with pytest.raises(cfg.ConfigError) as e:
        redis_config(tmp_path, 'type = "redis"\nurl = "${REDIS_URL_T}"\n')
    assert "store.url" in str(e.value) and "pa55word" not in str(e.value)


@pytest.mark.parametrize(
    "store, key, expected",
    [
        ('type = "redis"\n', "store.url", "redis://host:port/db"),
        ('type = "redis"\nurl = "redis://"\n', "store.url", "a host"),
        ('type = "redis"\nurl = "redis://h:99999/0"\n', "store.url", "a port number"),
        ('type = "redis"\nurl = "redis://h/x"\n', "store.url", "a database number"),
        ('type = "redis"\nurl = "redis://h"\nclaim_after = 1\n', "store.claim_after", "at least 3"),
        ('type = "redis"\nurl = "redis://h"\nnode = "a b"\n', "store.node", "letters, digits"),
        ('type = "redis"\nurl = "redis://h"\nkey_prefix = "a b"\n', "store.key_prefix", "without spaces"),
        ('type = "redis"\nurl = "redis://h"\nwait_replicas = -1\n', "store.wait_replicas", "0 or more"),
        ('type = "redis"\nurl = "redis://h"\npath = "x.db"\n', "store.path", "belongs to the other"),
        ('url = "redis://h"\n', "store.url", 'no url with type = "sqlite"'),
        ('type = "mongo"\n', "store.type", "'sqlite', 'redis'"),
        ('type = "redis"\nurl = "redis+cluster://h:7000/1"\n', "store.url", "database 0"),
        ('type = "redis"\nurl = "unix:///r.sock"\ncluster = true\n', "store.url", "unix socket"),
        (
            'type = "redis"\nurl = "redis://h"\ncluster = true\nkey_prefix = "{x}:"\n',
            "store.key_prefix",
            "no braces",
        ),
        (
            'type = "redis"\nurl = "redis://h"\ncluster = true\npartitions = 1\n',
            "store.partitions",
            "2 to 1024",
        ),
        ('type = "redis"\nurl = "redis://h"\ncluster = "yes"\n', "store.cluster", "true or false"),
    ],
)
def test_bad_redis_store_settings_name_the_key(tmp_path, store, key, expected):
    with pytest.raises(cfg.ConfigError) as e:
        redis_config(tmp_path, store)
    assert f": {key}: expected" in str(e.value) and expected in str(e.value)


@pytest.mark.parametrize(
    "url, cluster",
    [
        ("redis+cluster://10.0.0.5:7000", True),
        ("rediss+cluster://10.0.0.5:7000/0", True),
        ("redis://10.0.0.5:7000/0", False),
    ],
)
def test_a_cluster_url_means_a_redis_cluster(tmp_path, url, cluster):
    c = redis_config(tmp_path, f'type = "redis"\nurl = "{url}"\n').store
    assert (c.cluster, c.partitions) == (cluster, 12)


def test_cluster_true_with_a_plain_url_and_its_partitions(tmp_path):
    c = redis_config(
        tmp_path, 'type = "redis"\nurl = "redis://h:7000"\ncluster = true\npartitions = 24\n'
    ).store
    assert (c.cluster, c.partitions) == (True, 24)


@pytest.mark.parametrize(
    "path", ["conf/examples/node-a.toml", "conf/examples/node-b.toml", "deploy/gateway.toml"]
)
def test_shipped_redis_configs_pass_check_config(path):
    env = {
        **os.environ,
        "SMPPGW_REDIS_URL": "redis://127.0.0.1:6379/0",
        "SMPPGW_ADMIN_TOKEN": "x" * 24,
        "SMPPGW_DEMO_PASSWORD": "demo",
    }
    r = subprocess.run([sys.executable, "-m", "smppgw", "check-config", path], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "store redis:redis://" in r.stdout


def test_backup_refuses_a_redis_store_and_says_what_to_do_instead(tmp_path):
    conf = write(tmp_path, MINIMAL + '[store]\ntype = "redis"\nurl = "redis://127.0.0.1:6379/0"\n')
    args = [sys.executable, "-m", "smppgw", "backup", str(tmp_path / "copy.db"), "--config", str(conf)]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "backup copies a SQLite store" in r.stderr and "BGSAVE" in r.stderr
