"""`smppgw serve --workers N`: N gateway processes on one machine, sharing its ports, supervised.

The parent process runs no gateway: it checks the config, starts N workers (each a fresh
interpreter, `python -m smppgw serve --config FILE --worker I`: forking a process that has a
reactor and threads is unsafe), and watches them. The parent listens on the SMPP (and SMPP
TLS) ports itself and hands each connection it accepts to the next ready worker in turn, over a
Unix socket per worker (smppgw/listen.py): the kernel's SO_REUSEPORT hash puts a few long-lived
ESME connections unevenly, and one worker with 3 of 4 sessions is the whole group's limit. The
HTTP and admin ports are shared with SO_REUSEPORT (short requests: the hash spreads them well).
The workers share the Redis store, so they behave as one gateway exactly as several machines
do. Worker i also serves the HTTP site alone on `[http] worker_ports_from` + i (its /metrics).

The parent forwards SIGTERM/SIGINT (every worker drains; the parent exits 0 once all did) and
SIGHUP (every worker reloads). A reload a worker was asked for over the admin API reaches one
worker only; that worker tells the parent, which sends SIGHUP to the others. A worker that dies
is started again after a backoff (`RestartPolicy`); one that keeps dying soon after its start,
or that fails at the very first start (a port in use, Redis down), ends the whole group with
exit 1 rather than looping. Each worker gets SIGTERM if the parent itself dies (PR_SET_PDEATHSIG).

Worker i's node name is `<[store] node>-<i>`, the same across its restarts, so a restarted
worker resumes its own work; without `[store] node` every process has its own default name.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smppgw.config import Config
from smppgw.listen import BACKLOG, HANDOFF_TAGS
from smppgw.logs import event

log = logging.getLogger("smppgw.workers")

NAME_MAX = 64  # [store] node's limit (config._NAME)
STOP_TIMEOUT = 60.0  # seconds the workers get to drain after SIGTERM before the parent kills them


def refusal(config: Config, workers: int) -> str | None:
    """Why `config` cannot run as `workers` worker processes; None when it can."""
    if workers < 1:
        return f"--workers: at least 1, got {workers}"
    c = config
    if c.store.type != "redis":
        return (
            f'{c.source}: store.type: --workers needs type = "redis" (got "{c.store.type}"): one SQLite '
            "file cannot be shared by several processes; run one process, or share a Redis store"
        )
    fixed = {"server.port": c.server.port, "http.port": c.http.port}
    if c.server.tls_port is not None:
        fixed["server.tls_port"] = c.server.tls_port
    if c.admin.port is not None:
        fixed["admin.port"] = c.admin.port
    for key, port in fixed.items():
        if port == 0:
            return f"{c.source}: {key}: --workers needs a fixed port (with 0 each worker would get another)"
    base = c.http.worker_ports_from
    if base is not None:
        last = base + workers - 1
        if last > 65535:
            return f"{c.source}: http.worker_ports_from: {base} + {workers} workers goes past port 65535"
        for key, port in fixed.items():
            if base <= port <= last:
                return f"{c.source}: http.worker_ports_from: ports {base}-{last} include {key} ({port})"
    if c.store.node and len(f"{c.store.node}-{workers - 1}") > NAME_MAX:
        return f"{c.source}: store.node: too long to add -<worker> (at most {NAME_MAX} characters in all)"
    return None


def worker_config(config: Config, worker: int) -> Config:
    """The config as worker `worker` runs it: its node name gets `-<worker>` (when one is set)."""
    if not config.store.node:
        return config  # the default name (host name + pid) is already one per process
    store = dataclasses.replace(config.store, node=f"{config.store.node}-{worker}")
    return dataclasses.replace(config, store=store)


def smpp_ports(config: Config) -> list[tuple[bytes, socket.socket]]:
    """The parent's listening sockets for the SMPP ports (tagged as HANDOFF_TAGS), non-blocking.
    Raises OSError (a port in use) before any worker starts."""
    c = config.server
    wanted = [("smpp", c.port)] + ([("smpp_tls", c.tls_port)] if c.tls_port is not None else [])
    out = []
    for name, port in wanted:
        family = socket.AF_INET6 if ":" in c.host else socket.AF_INET
        sock = socket.create_server((c.host, port), family=family, backlog=BACKLOG)
        sock.setblocking(False)
        out.append((HANDOFF_TAGS[name], sock))
    return out


# -- the worker's side ------------------------------------------------------------------------


class ParentLink:
    """A worker's line to the parent (a pipe): "ready" once it listens, "reload" after a reload
    it was asked for over the admin API (the parent then reloads the other workers)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _say(self, word: str) -> None:
        try:
            os.write(self.fd, word.encode() + b"\n")
        except OSError:  # the parent is gone: PR_SET_PDEATHSIG stops this worker
            pass

    def ready(self) -> None:
        self._say("ready")

    def reloaded(self) -> None:
        self._say("reload")


# -- the parent's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """When a worker that died is started again, and when to give up instead."""

    first_delay: float = 0.5  # seconds before the first restart; doubled for each quick death
    max_delay: float = 30.0
    stable_after: float = 10.0  # a run this long was no quick death: the count starts over
    max_quick_deaths: int = 5  # quick deaths in a row: give up (a config, port or store problem)

    def after_exit(self, slot: Slot, now: float) -> float | None:
        """Seconds until `slot`'s worker starts again (updating the slot's count), or None: give up."""
        if not slot.ever_ready:
            return None  # it never came up: the same error would come again at every start
        if now - slot.started_at >= self.stable_after:
            slot.quick_deaths = 0
        else:
            slot.quick_deaths += 1
        if slot.quick_deaths >= self.max_quick_deaths:
            return None
        return min(self.max_delay, self.first_delay * 2**slot.quick_deaths)


@dataclass
class Slot:
    """Worker number `index`: its current process, if any, and its history."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    pipe: int | None = None  # read end of the worker's ParentLink
    channel: socket.socket | None = None  # the parent's end of the worker's handoff socket
    handed: int = 0  # connections handed to it
    buffer: bytes = b""
    started_at: float = 0.0
    ready: bool = False
    ever_ready: bool = False
    quick_deaths: int = 0
    restart_at: float | None = None
    starts: int = 0
    reload_pending: bool = False  # a reload came before it was ready (SIGHUP would kill it then)


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup(parent: int) -> Callable[[], None]:
    def setup() -> None:  # in the child between fork and exec (the parent has no threads to fear)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def worker_command(config_path: str, index: int, ready_fd: int, handoff_fd: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "smppgw", "serve", "--config", config_path]
    argv += ["--worker", str(index), "--parent-fd", str(ready_fd)]
    return argv + (["--handoff-fd", str(handoff_fd)] if handoff_fd is not None else [])


@dataclass
class Supervisor:
    """The parent: start `workers` processes, forward signals, restart, stop. `run()` returns the
    exit status."""

    workers: int
    command: Callable[[int, int, int | None], list[str]]  # (worker index, pipe fd, handoff fd) -> argv
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    stop_timeout: float = STOP_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    ports: list[tuple[bytes, socket.socket]] = field(default_factory=list)  # accepted here, handed on
    slots: list[Slot] = field(init=False)
    status: int = field(init=False, default=0)
    stopping_since: float | None = field(init=False, default=None)
    killed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.slots = [Slot(i) for i in range(self.workers)]
        self._signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._accepting = False
        self._turn = 0  # the slot that gets the next connection
        self.refused = 0  # connections closed for want of a ready worker

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handled = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        old = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        self._selector.register(wake_r, selectors.EVENT_READ, None)
        try:
            event(log, "workers_starting", workers=self.workers, pid=os.getpid())
            for slot in self.slots:
                self._start(slot)
            while True:
                for key, _ in self._selector.select(self._timeout()):
                    if key.data is None:
                        _drain(wake_r)
                    elif isinstance(key.data, bytes):
                        self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
                    else:
                        self._read(key.data)
                self._handle_signals()
                self._reap()
                self._listen_while_ready()
                if self.stopping_since is not None:
                    if not any(s.proc for s in self.slots):
                        event(log, "workers_stopped", status=self.status)
                        return self.status
                    if not self.killed and self.clock() - self.stopping_since > self.stop_timeout:
                        self._kill_all()
                else:
                    self._restart_due()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            self._selector.close()
            os.close(wake_r)
            os.close(wake_w)
            for _, sock in self.ports:
                sock.close()
            for slot in self.slots:
                self._close_channel(slot)

    def _timeout(self) -> float | None:
        now = self.clock()
        if self.stopping_since is not None:
            if self.killed:
                return None  # SIGCHLD wakes the loop
            return max(0.0, self.stopping_since + self.stop_timeout - now) + 0.01
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        return max(0.0, min(due) - now) if due else None

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)  # handled by the loop, which the wakeup fd wakes

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stop(f"signal {signal.Signals(signum).name}")
            elif signum == signal.SIGHUP:
                event(log, "workers_reload", reason="SIGHUP")
                self._send_all(signal.SIGHUP)

    # -- connections -----------------------------------------------------------------------

    def _listen_while_ready(self) -> None:
        """Accept on the SMPP ports while some worker can take a connection; otherwise leave
        them in the kernel's backlog (a restart of every worker: ESMEs wait, none is refused)."""
        want = self.stopping_since is None and any(s.ready and s.channel for s in self.slots)
        if want == self._accepting or not self.ports:
            return
        for tag, sock in self.ports:
            if want:
                self._selector.register(sock, selectors.EVENT_READ, tag)
            else:
                self._selector.unregister(sock)
        self._accepting = want

    def _accept(self, sock: socket.socket, tag: bytes) -> None:
        for _ in range(64):  # a burst of reconnects: a few loop turns, other events between
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors, a reset before accept: the next one may pass
                log.warning("event=accept_failed error=%r", e)
                return
            with conn:
                self._hand_over(conn, tag)

    def _hand_over(self, conn: socket.socket, tag: bytes) -> None:
        """To the next ready worker in turn; past one whose socket is full or gone."""
        n = len(self.slots)
        for step in range(n):
            slot = self.slots[(self._turn + step) % n]
            if not (slot.ready and slot.channel):
                continue
            try:
                socket.send_fds(slot.channel, [tag], [conn.fileno()])
            except OSError:
                continue
            slot.handed += 1
            self._turn = (self._turn + step + 1) % n
            return
        self.refused += 1
        if self.refused == 1 or self.refused % 100 == 0:
            event(log, "connection_not_handed", logging.WARNING, refused=self.refused)

    def _close_channel(self, slot: Slot) -> None:
        if slot.channel is not None:
            slot.channel.close()
            slot.channel = None

    # -- workers ---------------------------------------------------------------------------

    def _start(self, slot: Slot) -> None:
        r, w = os.pipe()
        theirs: socket.socket | None = None
        if self.ports:
            self._close_channel(slot)
            slot.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            slot.channel.setblocking(False)
        fds = (w,) if theirs is None else (w, theirs.fileno())
        try:
            slot.proc = subprocess.Popen(
                self.command(slot.index, w, None if theirs is None else theirs.fileno()),
                pass_fds=fds,
                process_group=0,  # the terminal's Ctrl-C reaches the parent, which stops them in order
                preexec_fn=_child_setup(os.getpid()),
            )
        finally:
            os.close(w)
            if theirs is not None:
                theirs.close()
        slot.pipe, slot.buffer = r, b""
        slot.started_at, slot.ready, slot.restart_at = self.clock(), False, None
        slot.reload_pending = False  # it reads the file now
        slot.starts += 1
        self._selector.register(r, selectors.EVENT_READ, slot)
        event(log, "worker_started", worker=slot.index, pid=slot.proc.pid, start=slot.starts)

    def _read(self, slot: Slot) -> None:
        assert slot.pipe is not None
        try:
            data = os.read(slot.pipe, 4096)
        except OSError:
            data = b""
        if not data:  # the worker closed it: it exited (reaped in _reap)
            self._close_pipe(slot)
            return
        slot.buffer += data
        *lines, slot.buffer = slot.buffer.split(b"\n")
        for line in lines:
            if line == b"ready":
                slot.ready = slot.ever_ready = True
                pid = slot.proc.pid if slot.proc else "-"
                event(log, "worker_ready", worker=slot.index, pid=pid)
                if slot.reload_pending and self.stopping_since is None:
                    self._send_all(signal.SIGHUP, only=slot)
            elif line == b"reload" and self.stopping_since is None:
                event(log, "workers_reload", reason=f"admin API on worker {slot.index}")
                self._send_all(signal.SIGHUP, but=slot)

    def _close_pipe(self, slot: Slot) -> None:
        if slot.pipe is not None:
            self._selector.unregister(slot.pipe)
            os.close(slot.pipe)
            slot.pipe = None

    def _reap(self) -> None:
        now = self.clock()
        for slot in self.slots:
            if slot.proc is None or slot.proc.poll() is None:
                continue
            code, pid = slot.proc.returncode, slot.proc.pid
            slot.proc, slot.ready = None, False
            self._close_channel(slot)  # what it had not yet taken goes with it
            if slot.pipe is not None:  # what it said before it went ("ready" included)
                while slot.pipe is not None:
                    self._read(slot)
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
            if self.stopping_since is not None:
                clean = code == 0 or code == -signal.SIGTERM  # SIGTERM before its handler was set
                if not clean:
                    self.status = 1
                event(
                    log, "worker_stopped", logging.INFO if clean else logging.WARNING,
                    worker=slot.index, pid=pid, exit=how,
                )  # fmt: skip
                continue
            delay = self.policy.after_exit(slot, now)
            if delay is None:
                why = (
                    f"{slot.quick_deaths} quick deaths in a row" if slot.ever_ready
                    else "it never came up (see its error above)"
                )  # fmt: skip
                event(log, "worker_given_up", logging.ERROR, worker=slot.index, pid=pid, exit=how, why=why)
                self.status = 1
                self.stop(f"worker {slot.index} keeps failing")
                continue
            slot.restart_at = now + delay
            event(
                log, "worker_died", logging.WARNING, worker=slot.index, pid=pid, exit=how,
                restart_in=round(delay, 2), quick_deaths=slot.quick_deaths,
            )  # fmt: skip

    def _restart_due(self) -> None:
        now = self.clock()
        for slot in self.slots:
            if slot.proc is None and slot.restart_at is not None and slot.restart_at <= now:
                self._start(slot)

    def _send_all(self, signum: int, but: Slot | None = None, only: Slot | None = None) -> None:
        for slot in self.slots if only is None else [only]:
            if slot.proc is None or slot is but:
                continue
            if signum == signal.SIGHUP:
                slot.reload_pending = not slot.ready  # before its handler is set SIGHUP ends it
                if slot.reload_pending:
                    continue
            slot.proc.send_signal(signum)  # Popen: no signal to a process it has already reaped

    def stop(self, reason: str) -> None:
        """SIGTERM to every worker (each drains and exits); no more restarts. Once: a worker that
        drains needs no second signal."""
        if self.stopping_since is not None:
            return
        self.stopping_since = self.clock()
        event(log, "workers_stopping", reason=reason)
        for slot in self.slots:
            slot.restart_at = None
        self._send_all(signal.SIGTERM)

    def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.proc is not None:
                event(log, "worker_killed", logging.ERROR, worker=slot.index, pid=slot.proc.pid,
                      after=f"{self.stop_timeout:g}s")  # fmt: skip
                slot.proc.kill()
        self.status, self.killed = 1, True


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
