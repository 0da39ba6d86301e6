"""`serve --workers`: the restart policy, what a config needs for workers, the worker's config,
`[http] worker_ports_from`, the worker tag on log lines, shared listeners, and the supervisor
loop driving tiny stand-in worker processes (real processes and signals, no gateway)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol

from smppgw import config as cfg
from smppgw import logs
from smppgw.listen import listen
from smppgw.workers import RestartPolicy, Slot, refusal, worker_config

ROOT = Path(__file__).resolve().parents[2]

REDIS = """
[store]
type = "redis"
url = "redis://127.0.0.1:6379/0"
[accounts.demo]
password = "demo"
[providers.sim]
type = "simulator"
"""


def parse(text: str, source: str = "gw.toml") -> cfg.Config:
    import tomllib

    return cfg.parse(tomllib.loads(text), source)


# -- the restart policy ---------------------------------------------------------------------------


def started(at: float, ready: bool = True) -> Slot:
    return Slot(0, started_at=at, ever_ready=ready)


def test_a_worker_that_never_came_up_is_not_started_again():
    assert RestartPolicy().after_exit(started(0.0, ready=False), now=1.0) is None


def test_quick_deaths_back_off_doubling_and_then_give_up():
    policy = RestartPolicy(first_delay=0.5, max_delay=30.0, stable_after=10.0, max_quick_deaths=5)
    slot = started(0.0)
    delays = []
    for _ in range(5):
        delays.append(policy.after_exit(slot, now=slot.started_at + 1.0))
        slot.started_at += 100.0
    assert delays == [1.0, 2.0, 4.0, 8.0, None]


def test_a_long_run_starts_the_count_over_and_the_delay_is_capped():
    policy = RestartPolicy(first_delay=0.5, max_delay=3.0, stable_after=10.0, max_quick_deaths=9)
    slot = started(0.0)
    slot.quick_deaths = 6
    assert policy.after_exit(slot, now=5.0) == 3.0  # 0.5 * 2**7, capped
    assert slot.quick_deaths == 7
    slot.started_at = 100.0
    assert policy.after_exit(slot, now=200.0) == 0.5  # it had run 100 s: no quick death
    assert slot.quick_deaths == 0


# -- what --workers needs ------------------------------------------------------------------------


def test_workers_refuse_sqlite_naming_why():
    c = parse("[accounts.demo]\npassword='demo'\n[providers.sim]\ntype='simulator'\n")
    why = refusal(c, 2)
    assert why is not None
    assert 'store.type: --workers needs type = "redis"' in why and "one SQLite file cannot be shared" in why


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("[server]\nport = 0\n", "server.port: --workers needs a fixed port"),
        ("[http]\nport = 0\n", "http.port: --workers needs a fixed port"),
        ("[http]\nport = 9102\nworker_ports_from = 9101\n", "ports 9101-9104 include http.port (9102)"),
        ("[http]\nworker_ports_from = 65534\n", "goes past port 65535"),
        ("[admin]\ntoken = '0123456789abcdef'\nport = 0\n", "admin.port: --workers needs a fixed port"),
    ],
)
def test_workers_refuse_ports_they_cannot_share(extra, expected):
    why = refusal(parse(REDIS + extra), 4)
    assert why is not None and expected in why, why


def test_workers_refuse_a_node_name_that_leaves_no_room_for_the_number():
    c = parse(REDIS.replace('type = "redis"', f'type = "redis"\nnode = "{"n" * 63}"'))
    assert "store.node: too long" in (refusal(c, 2) or "")
    assert refusal(parse(REDIS), 2) is None and refusal(parse(REDIS), 0) == "--workers: at least 1, got 0"


def test_a_worker_gets_its_own_node_name_only_when_one_is_set():
    named = parse(REDIS.replace('type = "redis"', 'type = "redis"\nnode = "gw"'))
    assert worker_config(named, 3).store.node == "gw-3" and named.store.node == "gw"
    plain = parse(REDIS)
    assert worker_config(plain, 3) is plain  # host name + pid already differ


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", "a fixed TCP port (1-65535)"),
        ("70000", "a TCP port (0-65535), got 70000"),
        ("'9101'", "a TCP port (0-65535), got '9101'"),
    ],
)
def test_worker_ports_from_must_be_a_fixed_port(value, expected):
    with pytest.raises(cfg.ConfigError) as e:
        parse(REDIS + f"[http]\nworker_ports_from = {value}\n")
    assert e.value.key == "http.worker_ports_from" and expected in str(e.value)
    assert parse(REDIS + "[http]\nworker_ports_from = 9101\n").http.worker_ports_from == 9101
    assert parse(REDIS).http.worker_ports_from is None


# -- log lines --------------------------------------------------------------------------------


@pytest.fixture
def untagged():
    saved = dict(logs._process)
    yield
    logs._process.clear()
    logs._process.update(saved)


def record(name: str = "started") -> logging.LogRecord:
    r = logging.LogRecord("smppgw.test", logging.INFO, __file__, 1, name, None, None)
    r.fields = {"event": name, "port": 2775}  # type: ignore[attr-defined]
    return r


def test_a_workers_log_lines_carry_its_number_in_both_formats(untagged):
    assert " worker=" not in logs.KvFormatter().format(record())
    logs.tag_process(worker=1)
    line = logs.KvFormatter().format(record())
    assert "logger=smppgw.test worker=1 event=started port=2775" in line
    assert json.loads(logs.JsonFormatter().format(record()))["worker"] == 1
    logs.setup("info", "json")  # a reload sets the handler up again: the tag stays
    formatter = logging.getLogger().handlers[0].formatter
    assert json.loads(formatter.format(record()))["worker"] == 1


# -- listening ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_twisted.inlineCallbacks
def test_shared_listeners_take_one_port_and_a_lone_one_cannot_join_them():
    from twisted.internet import reactor

    factory = Factory.forProtocol(Protocol)
    port = free_port()
    first = listen(reactor, "127.0.0.1", port, factory, shared=True)
    second = listen(reactor, "127.0.0.1", port, factory, shared=True)
    try:
        assert first.getHost().port == second.getHost().port == port
        with pytest.raises(CannotListenError):
            listen(reactor, "127.0.0.1", port, factory)
    finally:
        yield first.stopListening()
        yield second.stopListening()
    lone = listen(reactor, "127.0.0.1", port, factory)
    try:
        with pytest.raises(CannotListenError):
            listen(reactor, "127.0.0.1", port, factory, shared=True)
    finally:
        yield lone.stopListening()


# -- the supervisor loop, with stand-in workers --------------------------------------------------

# A stand-in worker: says "ready" (unless told not to), records signals in a file, and then
# behaves as its mode says. Workers get the mode from the file `mode-<i>`.
FAKE_WORKER = textwrap.dedent("""
    import os, signal, sys
    i, fd, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    mode = open(os.path.join(out, f"mode-{i}")).read().strip()
    def note(what):
        with open(os.path.join(out, "events"), "a") as f:
            f.write(f"{i} {os.getpid()} {what}\\n")
    signal.signal(signal.SIGHUP, lambda *_: note("hup"))
    signal.signal(signal.SIGTERM, lambda *_: (note("term"), sys.exit(0)))
    if mode == "never":
        note("failing")
        sys.exit(3)
    os.write(fd, b"ready\\n")
    note("ready")
    if mode == "die":
        sys.exit(3)
    if mode == "reload":
        os.write(fd, b"reload\\n")
    while True:
        signal.pause()
""")

SUPERVISOR = textwrap.dedent("""
    import sys
    from smppgw import logs
    from smppgw.workers import RestartPolicy, Supervisor
    out, n = sys.argv[1], int(sys.argv[2])
    logs.setup("info", "kv")
    command = lambda i, fd, _handoff: [sys.executable, out + "/worker.py", str(i), str(fd), out]
    policy = RestartPolicy(first_delay=0.01, max_delay=0.05, stable_after=5.0, max_quick_deaths=3)
    sys.exit(Supervisor(n, command, policy, stop_timeout=10).run())
""")


class Group:
    def __init__(self, tmp_path: Path, modes: list[str]) -> None:
        self.dir = tmp_path
        (tmp_path / "worker.py").write_text(FAKE_WORKER)
        for i, mode in enumerate(modes):
            (tmp_path / f"mode-{i}").write_text(mode)
        (tmp_path / "events").touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, str(tmp_path), str(len(modes))],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def events(self) -> list[tuple[int, int, str]]:
        lines = (self.dir / "events").read_text().splitlines()
        return [(int(a), int(b), c) for a, b, c in (line.split() for line in lines)]

    def wait_for(self, cond, timeout: float = 15.0) -> list[tuple[int, int, str]]:
        end = time.monotonic() + timeout
        while not cond(self.events()):  # polling real processes, bounded
            assert time.monotonic() < end, (self.events(), self.proc.poll())
            time.sleep(0.02)
        return self.events()

    def finish(self, timeout: float = 15.0) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return code, self.proc.stderr.read()  # type: ignore[union-attr]


def ready(events, i: int) -> list[int]:
    return [pid for w, pid, what in events if w == i and what == "ready"]


def test_sigterm_reaches_every_worker_and_the_parent_exits_0(tmp_path):
    g = Group(tmp_path, ["run", "run"])
    g.wait_for(lambda ev: ready(ev, 0) and ready(ev, 1))
    g.proc.send_signal(signal.SIGTERM)
    code, err = g.finish()
    assert code == 0, err
    assert sorted(w for w, _, what in g.events() if what == "term") == [0, 1]
    assert "event=workers_stopped status=0" in err


def test_sighup_reaches_every_worker_and_an_admin_reload_reaches_the_others(tmp_path):
    g = Group(tmp_path, ["run", "reload", "run"])
    g.wait_for(lambda ev: all(ready(ev, i) for i in range(3)))
    # worker 1 said "reload" (as after POST /admin/reload): the two others get SIGHUP, it does not
    events = g.wait_for(lambda ev: sum(what == "hup" for _, _, what in ev) == 2)
    assert sorted(w for w, _, what in events if what == "hup") == [0, 2]
    g.proc.send_signal(signal.SIGHUP)
    events = g.wait_for(lambda ev: sum(what == "hup" for _, _, what in ev) == 5)
    assert sorted(w for w, _, what in events if what == "hup") == [0, 0, 1, 2, 2]
    g.proc.send_signal(signal.SIGTERM)
    assert g.finish()[0] == 0


def test_a_killed_worker_is_started_again_with_the_same_number(tmp_path):
    g = Group(tmp_path, ["run", "run"])
    events = g.wait_for(lambda ev: ready(ev, 0) and ready(ev, 1))
    (victim,) = ready(events, 1)
    os.kill(victim, signal.SIGKILL)
    events = g.wait_for(lambda ev: len(ready(ev, 1)) == 2)
    assert ready(events, 1)[1] != victim and len(ready(events, 0)) == 1
    g.proc.send_signal(signal.SIGTERM)
    code, err = g.finish()
    assert code == 0, err
    assert "event=worker_died worker=1" in err and 'exit="signal SIGKILL"' in err


def test_a_worker_that_keeps_dying_ends_the_group_with_exit_1(tmp_path):
    g = Group(tmp_path, ["run", "die"])
    code, err = g.finish()
    assert code == 1, err
    assert len(ready(g.events(), 1)) == 3  # max_quick_deaths starts, then no more
    assert [w for w, _, what in g.events() if what == "term"] == [0]  # the other was stopped
    assert "event=worker_given_up worker=1" in err and "quick deaths in a row" in err


def test_a_worker_that_fails_at_its_first_start_ends_the_group_at_once(tmp_path):
    g = Group(tmp_path, ["run", "never"])
    code, err = g.finish()
    assert code == 1, err
    assert [w for w, _, what in g.events() if what == "failing"] == [1]  # not started again
    assert "event=worker_given_up worker=1" in err and "never came up" in err
