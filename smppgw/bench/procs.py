"""The bench's processes: a gateway (or null responder) it starts and measures from /proc (CPU
of the process, its workers and its threads; memory), free loopback ports, and the load
generator's own CPU."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from smppgw.bench import revs

WRITER_COMM = "smppgw-sqlite-w"  # the store's writer thread, as /proc shows it (15 characters)
TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"bench: the server exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.05)
    raise SystemExit("bench: the server did not listen in time")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of a process: tid -> (comm, seconds)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / TCK)
    return out


def thread_split(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, Any]:
    """The CPU a run cost the main thread and the store's writer thread.

    Python before 3.14 does not give OS threads their Python names, so unless a thread is called
    WRITER_COMM the writer is taken to be every thread but the main one (the gateway has no
    other threads of its own)."""
    spent = {tid: cpu - before.get(tid, ("", 0.0))[1] for tid, (_, cpu) in after.items()}
    named = [tid for tid, (comm, _) in after.items() if comm.startswith(WRITER_COMM)]
    writer = named or [tid for tid in after if tid != pid]
    total = sum(spent.values())
    w = sum(spent[t] for t in writer)
    return {
        "threads": len(after),
        "main_thread_cpu_s": round(spent.get(pid, 0.0), 2),
        "writer_thread_cpu_s": round(w, 2),
        "writer_cpu_share": round(w / total, 3) if total else None,
        "writer_by": "name" if named else "non-main threads",
    }


class Server:
    """A gateway or null-responder process, with its CPU time and memory."""

    def __init__(
        self, args: list[str], port: int, python: str = sys.executable, cwd: Path | None = None
    ) -> None:
        self.port = port
        # the cwd decides which smppgw `-m` imports: a revision's gateway runs in its own tree
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [python, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=cwd or revs.ROOT,
            env=env,
        )
        wait_listening(port, self.proc)

    def cpu(self) -> float:
        """Its CPU seconds, and its children's (the workers of `serve --workers`)."""
        return sum(_cpu(pid) for pid in [self.proc.pid, *self.children()])

    def children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def wait_children(self, n: int, http: int, timeout: float = 30.0) -> None:
        """`serve --workers n`: until each of its n workers listens on the HTTP port, which a
        worker does once its store is open (the parent listens on the SMPP port before them)."""
        end = time.monotonic() + timeout
        while True:
            kids = self.children()
            if len(kids) >= n and all(_listens(pid, http) for pid in kids):
                return
            if time.monotonic() > end:
                raise SystemExit(f"bench: {n} workers did not start within {timeout:g} s")
            time.sleep(0.1)  # polling another process

    def threads(self) -> dict[int, tuple[str, float]]:
        return thread_cpu(self.proc.pid)

    def memory(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TCK


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a listening TCP socket on `port` (from /proc, as ss does)."""
    try:
        mine = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            here = int(cols[1].rsplit(":", 1)[1], 16)
            if cols[3] == "0A" and here == port and f"socket:[{cols[9]}]" in mine:  # 0A: LISTEN
                return True
    return False


def loadgen_cpu() -> float:
    """CPU seconds of this process so far: the load generator runs in it, on one thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
