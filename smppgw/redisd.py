"""A redis-server of our own, for the tests and the benchmark: Debian's binary on a free
loopback port in a directory of ours (no system service, nothing saved unless AOF is asked
for), which may be SIGKILLed and started again on the same port and files.

`./scripts/test` and `./scripts/bench` install Debian's redis-server when it is missing. Tests
that only need a Redis share the run's one under a key prefix of their own (tests/conftest.py);
tests that kill or restart Redis, and the benchmark, start their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server is not installed (Debian's redis-server; ./scripts/test installs it)"
        )
    return found


class RedisServer:
    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        fsync: str = "everysec",
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly, self.fsync, self.extra = appendonly, fsync, extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--save", "", "--logfile", str(self.dir / "redis.log"),
                "--appendonly", "yes" if self.appendonly else "no"]  # fmt: skip
        if self.appendonly:
            args += ["--appendfsync", self.fsync]
        args += list(self.extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (with a password)
                        return self
            except OSError:
                pass
            time.sleep(0.02)  # waiting for a process to listen, not for a timer
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, what the AOF has is what survives."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
