"""The benchmark's own Redis, emptied before each run, stopped at the end, with its CPU time read
from /proc as the gateway's is: one redis-server (BenchRedis), or a Redis Cluster of primaries
started on loopback (BenchCluster, S7), measured shard by shard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis

from smppgw.redisd import RedisClusterServers, RedisServer

TCK = os.sysconf("SC_CLK_TCK")
AOF = ("no", "everysec", "always")  # --redis-aof: no AOF, or appendfsync everysec / always


def _persistence(aof: str) -> dict[str, Any]:
    if aof not in AOF:
        raise ValueError(f"aof: one of {AOF}, got {aof!r}")
    # no automatic AOF rewrite: it would restart the file mid-run and spoil its bytes per message
    extra = ("--auto-aof-rewrite-percentage", "0") if aof != "no" else ()
    return {"appendonly": aof != "no", "fsync": aof if aof != "no" else "everysec", "extra": extra}


class _Measured:
    """What the bench reads of its redis-servers: their CPU, commands and AOF bytes."""

    def measured(self) -> list[RedisServer]:
        raise NotImplementedError

    def cpus(self) -> list[float]:
        """CPU seconds of each redis-server (each shard)."""
        out = []
        for s in self.measured():
            assert s.proc is not None
            fields = Path(f"/proc/{s.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / TCK)
        return out

    def cpu(self) -> float:
        return sum(self.cpus())

    def _each(self, call: Any) -> list[Any]:
        out = []
        for s in self.measured():
            client = redis.Redis(port=s.port, socket_timeout=30)
            try:
                out.append(call(client))
            finally:
                client.close()
        return out

    def flush(self) -> None:
        """Empty it: every run starts from the same state (and memory)."""
        self._each(lambda c: c.flushall())

    def reset_stats(self) -> dict[str, int]:
        """Zero INFO commandstats; the AOF's size now (bytes, 0 without AOF)."""
        self._each(lambda c: c.config_resetstat())
        return {"aof": sum(self._each(_aof_size))}

    def breakdown(self, before: dict[str, int], messages: int) -> dict[str, Any]:
        """Where redis-server's time went since reset_stats (all shards together): per message,
        the calls and microseconds of each command (scripts' inner commands included, as Redis
        counts them), and the AOF bytes written."""
        stats: dict[str, dict[str, int]] = {}
        for one in self._each(lambda c: c.info("commandstats")):
            for name, v in one.items():
                got = stats.setdefault(name.removeprefix("cmdstat_"), {"calls": 0, "usec": 0})
                got["calls"] += v["calls"]
                got["usec"] += v["usec"]
        size = sum(self._each(_aof_size))
        n = max(1, messages)
        commands = {
            name: {"calls": round(v["calls"] / n, 2), "us": round(v["usec"] / n, 2)}
            for name, v in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
            if v["calls"]
        }
        return {"aof_bytes_per_msg": round((size - before["aof"]) / n, 1), "commands": commands}


def _aof_size(client: redis.Redis) -> int:
    return int(client.info("persistence").get("aof_current_size", 0) or 0)


class BenchRedis(_Measured, RedisServer):
    def __init__(self, directory: Path, aof: str = "no") -> None:
        super().__init__(directory, **_persistence(aof))

    def measured(self) -> list[RedisServer]:
        return [self]

    def start(self) -> BenchRedis:
        try:
            super().start()
        except RuntimeError as e:
            raise SystemExit(f"bench: {e}") from None
        return self


class BenchCluster(_Measured, RedisClusterServers):
    """S7's Redis Cluster: `shards` primaries, no replicas, each with the same persistence as
    the single redis-server it is compared with."""

    def __init__(self, directory: Path, aof: str = "no", shards: int = 3) -> None:
        super().__init__(directory, primaries=shards, **_persistence(aof))

    def measured(self) -> list[RedisServer]:
        return list(self.servers)

    def start(self) -> BenchCluster:
        try:
            super().start()
        except RuntimeError as e:
            raise SystemExit(f"bench: {e}") from None
        return self
