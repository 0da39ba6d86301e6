"""The benchmark's own redis-server (smppgw/redisd.py), emptied before each run, stopped at the
end, with its CPU time read from /proc as the gateway's is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis

from smppgw.redisd import RedisServer

TCK = os.sysconf("SC_CLK_TCK")
AOF = ("no", "everysec", "always")  # --redis-aof: no AOF, or appendfsync everysec / always


class BenchRedis(RedisServer):
    def __init__(self, directory: Path, aof: str = "no") -> None:
        if aof not in AOF:
            raise ValueError(f"aof: one of {AOF}, got {aof!r}")
        # no automatic AOF rewrite: it would restart the file mid-run and spoil its bytes per message
        extra = ("--auto-aof-rewrite-percentage", "0") if aof != "no" else ()
        super().__init__(
            directory, appendonly=aof != "no", fsync=aof if aof != "no" else "everysec", extra=extra
        )

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

    def reset_stats(self) -> dict[str, int]:
        """Zero INFO commandstats; the AOF's size now (bytes, 0 without AOF)."""
        client = redis.Redis(port=self.port, socket_timeout=30)
        client.config_resetstat()
        size = int(client.info("persistence").get("aof_current_size", 0) or 0)
        client.close()
        return {"aof": size}

    def breakdown(self, before: dict[str, int], messages: int) -> dict[str, Any]:
        """Where redis-server's time went since reset_stats: per message, the calls and
        microseconds of each command (scripts' inner commands included, as Redis counts them),
        and the AOF bytes written."""
        client = redis.Redis(port=self.port, socket_timeout=30)
        stats = client.info("commandstats")
        size = int(client.info("persistence").get("aof_current_size", 0) or 0)
        client.close()
        n = max(1, messages)
        commands = {
            name.removeprefix("cmdstat_"): {
                "calls": round(v["calls"] / n, 2),
                "us": round(v["usec"] / n, 2),
            }
            for name, v in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
            if v["calls"]
        }
        return {"aof_bytes_per_msg": round((size - before["aof"]) / n, 1), "commands": commands}
