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


class RedisClusterServers:
    """A Redis Cluster of our own on loopback: `primaries` redis-servers with
    `--cluster-enabled yes`, `replicas` replicas of each, joined by `redis-cli --cluster create`
    (the slots split evenly). A primary may be SIGKILLed and its replica promoted."""

    def __init__(
        self,
        directory: Path,
        *,
        primaries: int = 3,
        replicas: int = 0,
        appendonly: bool = False,
        fsync: str = "everysec",
        node_timeout_ms: int = 1000,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.dir = Path(directory)
        self.replicas = replicas
        cluster = ("--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout_ms),
                   "--cluster-require-full-coverage", "no")  # fmt: skip
        self.servers = [
            RedisServer(
                self.dir / f"n{i}",
                appendonly=appendonly,
                fsync=fsync,
                extra=cluster
                + ("--cluster-config-file", str(self.dir / f"n{i}" / "nodes.conf"))
                + ("--cluster-port", str(free_port()))  # (else port + 10000, maybe out of range)
                + extra,
            )
            for i in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.servers[0].port}/0"

    def start(self) -> RedisClusterServers:
        for s in self.servers:
            s.start()
        cli = shutil.which("redis-cli") or "redis-cli"
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        create = [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
                  "--cluster-yes"]  # fmt: skip
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(
                f"redis-cli --cluster create failed: {done.stdout[-1500:]}{done.stderr[-500:]}"
            )
        self.wait_ok()
        return self

    @staticmethod
    def _cli(port: int, *args: str) -> str:
        """What `redis-cli -p port args…` prints."""
        cli = shutil.which("redis-cli") or "redis-cli"
        done = subprocess.run([cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def cluster_info(self, port: int) -> dict[str, str]:
        out = self._cli(port, "cluster", "info")
        return dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok (the slots are served) and every replica
        follows its primary."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            live = [s for s in self.servers if s.proc is not None and s.proc.poll() is None]
            if all(self.cluster_info(s.port).get("cluster_state") == "ok" for s in live) and all(
                self._linked(s.port) for s in live if self.role_of(s.port) == "slave"
            ):
                return
            time.sleep(0.1)  # waiting for the cluster's own gossip, not a timer under test
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def _linked(self, port: int) -> bool:
        """A replica has done its first sync and follows its primary (else WAIT counts it out)."""
        return "master_link_status:up" in self._cli(port, "info", "replication")

    def role_of(self, port: int) -> str:
        return self._cli(port, "role").split("\n", 1)[0].strip()

    def master_of(self, port: int) -> int | None:
        """The port of the primary a replica follows (None for a primary)."""
        out = self._cli(port, "role").split()
        return int(out[2]) if out and out[0] == "slave" else None

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
