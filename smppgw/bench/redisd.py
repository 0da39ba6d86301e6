"""The benchmark's own redis-server (smppgw/redisd.py), emptied before each run, stopped at the
end, with its CPU time read from /proc as the gateway's is."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from smppgw.redisd import RedisServer

TCK = os.sysconf("SC_CLK_TCK")
AOF = ("no", "everysec", "always")  # --redis-aof: no AOF, or appendfsync everysec / always


class BenchRedis(RedisServer):
    def __init__(self, directory: Path, aof: str = "no") -> None:
        if aof not in AOF:
            raise ValueError(f"aof: one of {AOF}, got {aof!r}")
        super().__init__(directory, appendonly=aof != "no", fsync=aof if aof != "no" else "everysec")

    def start(self) -> BenchRedis:
        try:
            super().start()
        except RuntimeError as e:
            raise SystemExit(f"bench: {e}") from None
        return self

    def flush(self) -> None:
        """Empty it: every run starts from the same state (and memory)."""
        client = redis.Redis(port=self.port, socket_timeout=30)
        client.flushall()
        client.close()

    def cpu(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TCK
