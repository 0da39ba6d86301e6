"""`bench S1 --store redis --redis-replay N`: redis-server's cost per message alone on a core.

On a machine where the gateway, the load generator and redis-server share the cores, what
redis-server spends per message moves with what runs beside it (its caches, the scheduler):
the same build's figure varies by a fifth from hour to hour. So an extra S1 run records every
script the gateway loads and calls (`redis-cli monitor`, which itself slows Redis, so that run
is not measured), and the calls are sent again, in order, one at a time as the gateway's lanes
send them, to a fresh redis-server with the same persistence, N times: its CPU per message
then is the scripts' own cost (their commands, Lua, and the AOF). What a process does besides
its scripts (the blocking reads of the feed, its heartbeat's plain commands) is not replayed.
"""

from __future__ import annotations

import codecs
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hiredis

from smppgw.bench.redisd import BenchRedis

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')  # a quoted argument of a MONITOR line


def parse_monitor(lines: Iterable[bytes]) -> list[tuple[bytes, ...]]:
    """The SCRIPT LOAD and EVALSHA commands that clients sent (not those a script ran) from
    `redis-cli monitor` lines, whose arguments are quoted with C escapes."""
    out: list[tuple[bytes, ...]] = []
    for line in lines:
        head, _, rest = line.partition(b"] ")
        if not rest or head.endswith(b" lua"):  # a command a script ran
            continue
        if not rest.startswith((b'"EVALSHA"', b'"evalsha"', b'"SCRIPT"', b'"script"')):
            continue
        args = tuple(codecs.escape_decode(m)[0] for m in _ARG.findall(rest))  # type: ignore[attr-defined]
        if args[0].upper() == b"SCRIPT" and (len(args) < 3 or args[1].upper() != b"LOAD"):
            continue
        out.append(args)
    return out


class Recorder:
    """`redis-cli monitor` of the bench's redis-server into a file, while a run goes."""

    def __init__(self, port: int, path: Path) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise SystemExit("bench: --redis-replay needs redis-cli (Debian's redis-tools)")
        self.path = path
        self._out = path.open("wb")
        self.proc = subprocess.Popen(
            [cli, "-p", str(port), "monitor"], stdout=self._out, stderr=subprocess.DEVNULL
        )
        end = time.monotonic() + 10
        while not path.read_bytes().startswith(b"OK"):  # MONITOR's answer: it records from now on
            if self.proc.poll() is not None or time.monotonic() > end:
                raise SystemExit("bench: redis-cli monitor did not start")
            time.sleep(0.01)  # waiting for a process to connect, not for a timer

    def stop(self) -> list[tuple[bytes, ...]]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._out.close()
        with self.path.open("rb") as f:  # (line by line: the scripts' own commands are most of it)
            return parse_monitor(f)


def replay(commands: list[tuple[bytes, ...]], messages: int, aof: str, rounds: int) -> dict[str, Any]:
    """The commands sent to a fresh redis-server (`aof` as the bench's), `rounds` times: its CPU
    in microseconds per message (median, min, max) and its AOF bytes per message."""
    packed = [hiredis.pack_command(c) for c in commands]
    us: list[float] = []
    aof_bytes = 0.0
    errors: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="smppgw-replay-") as tmp:
        for i in range(rounds):
            server = BenchRedis(Path(tmp) / f"r{i}", aof).start()
            try:
                before, aof0 = server.cpu(), server.reset_stats()
                errors = _send(server.port, packed)
                us.append((server.cpu() - before) * 1e6 / max(1, messages))
                aof_bytes = server.breakdown(aof0, messages)["aof_bytes_per_msg"]
            finally:
                server.stop()
    return {
        "rounds": rounds,
        "calls": len(commands),
        "messages": messages,
        "redis_us_per_msg": round(statistics.median(us), 2),
        "redis_us_per_msg_min": round(min(us), 2),
        "redis_us_per_msg_max": round(max(us), 2),
        "aof_bytes_per_msg": aof_bytes,
        "errors": len(errors),  # (of the last round; a script refused in the replay: look at why)
        "first_error": str(errors[0]) if errors else None,
    }


def _send(port: int, packed: list[bytes]) -> list[Any]:
    """Each command in turn, its reply read before the next is sent; the error replies."""
    errors = []
    reader = hiredis.Reader()
    with socket.create_connection(("127.0.0.1", port)) as s:
        for cmd in packed:
            s.sendall(cmd)
            reply: Any = False
            while reply is False:
                reply = reader.gets()
                if reply is False:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        raise SystemExit("bench: the replay's redis-server closed the connection")
                    reader.feed(chunk)
            if isinstance(reply, hiredis.ReplyError):
                errors.append(reply)
    return errors


def table(rows: list[dict[str, Any]]) -> str:
    head = "scenario | gateway | rounds | calls | redis-server alone us/msg (min–max) | AOF bytes/msg"
    lines = [head + " | errors"]
    for r in rows:
        rp = r["replay"]
        lines.append(
            f"{r['scenario']} | {r['gateway']} | {rp['rounds']} | {rp['calls']} | {rp['redis_us_per_msg']}"
            f" ({rp['redis_us_per_msg_min']}–{rp['redis_us_per_msg_max']}) | {rp['aof_bytes_per_msg']}"
            f" | {rp['errors']}"
        )
    return "\n".join(lines)
