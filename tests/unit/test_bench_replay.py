"""The benchmark's `--redis-replay`: the scripts a gateway ran, recorded with redis-cli monitor
and sent again to a redis-server alone. Its parsing of MONITOR lines, and a small run (no
timing is asserted)."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import hiredis

from smppgw.bench.replay import parse_monitor
from smppgw.redisd import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def test_monitor_lines_give_back_the_scripts_clients_sent_byte_for_byte(tmp_path):
    payload = b'["I","0000000001",["d","[\\"caf\\u00e9\\"]"]]\n\t\x00\xff"\\'
    server = RedisServer(tmp_path / "r").start()
    monitor = subprocess.Popen(["redis-cli", "-p", str(server.port), "monitor"], stdout=subprocess.PIPE)
    try:
        assert monitor.stdout is not None and monitor.stdout.readline() == b"OK\n"  # recording
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            reader = hiredis.Reader()

            def call(*args):
                s.sendall(hiredis.pack_command(args))
                while (reply := reader.gets()) is False:
                    reader.feed(s.recv(65536))
                return reply

            sha = call("SCRIPT", "LOAD", "redis.call('SET', KEYS[1], ARGV[1]) return 1")
            call("EVALSHA", sha, "1", "k", payload)
            call("GET", "k")
            call("SCRIPT", "EXISTS", sha)
    finally:
        monitor.terminate()
        out = monitor.communicate(timeout=10)[0]
        server.stop()
    commands = parse_monitor(out.splitlines())
    assert [c[:2] for c in commands] == [(b"SCRIPT", b"LOAD"), (b"EVALSHA", sha)]
    # the script's own SET (a "lua" line), GET and SCRIPT EXISTS are left out
    assert commands[1] == (b"EVALSHA", sha, b"1", b"k", payload)


def test_a_recorded_s1_is_replayed_without_errors():
    r = subprocess.run(
        [sys.executable, "-m", "smppgw", "bench", "S1", "--store", "redis", "--count", "300",
         "--redis-aof", "everysec", "--redis-replay", "2", "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    (row,) = summary["replay"]
    rp = row["replay"]
    assert row["gateway"] == "current" and rp["rounds"] == 2 and rp["messages"] == 300
    assert rp["errors"] == 0 and rp["calls"] > 0, rp
    assert rp["aof_bytes_per_msg"] > 0 and rp["redis_us_per_msg_max"] >= rp["redis_us_per_msg_min"] >= 0
    assert "redis-server alone us/msg" in r.stdout
