"""The benchmark's own redis-server: Debian's binary on a free loopback port in a temp dir (no
system service, nothing saved by default), emptied before each run, stopped at the end, with
its CPU time read from /proc as the gateway's is.

(The tests have their own launcher in tests/redisd.py, which can also SIGKILL and restart a
server; the bench must not import tests/, and needs only start, flush, CPU and stop.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

TCK = os.sysconf("SC_CLK_TCK")
AOF = ("no", "everysec", "always")  # --redis-aof: no AOF, or appendfsync everysec / always


class BenchRedis:
    def __init__(self, directory: Path, aof: str = "no") -> None:
        if aof not in AOF:
            raise ValueError(f"aof: one of {AOF}, got {aof!r}")
        self.dir, self.aof = Path(directory), aof
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> BenchRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench: redis-server is not installed (Debian: apt-get install redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--save", "", "--logfile", str(self.dir / "redis.log"), "--daemonize", "no",
                "--appendonly", "no" if self.aof == "no" else "yes"]  # fmt: skip
        if self.aof != "no":
            args += ["--appendfsync", self.aof]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text()[-2000:]
                raise SystemExit(f"bench: redis-server exited: {log}")
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return self
            except redis.ConnectionError:
                pass
            if time.monotonic() > end:
                self.stop()
                raise SystemExit("bench: redis-server did not answer PING within 10 s")
            time.sleep(0.02)  # waiting for a process to listen

    def flush(self) -> None:
        """Empty it: every run starts from the same state (and memory)."""
        client = redis.Redis(port=self.port, socket_timeout=30)
        client.flushall()
        client.close()

    def cpu(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TCK

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
