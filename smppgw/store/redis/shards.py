"""Which Redis server a commit's script calls go to, and sending them there.

On one Redis every call goes over the one client. On a Redis Cluster the calls of a commit are
grouped by the primary that holds their partition's slot (redis-py's cluster client knows the
slot map) and sent as one pipeline per primary, all at once, each ending with its WAIT when
`wait_replicas` is set: WAIT counts the replicas that have this connection's writes, so it must
follow them on the same connection, which the cluster client's own pipeline does not promise.
A call that reaches a primary no longer holding its slot (a fail-over, a resharding) comes back
as MOVED or a connection error: the slot map is read again and the commit is tried again, as
for any Redis that is away.

The commands are packed in C (hiredis) and sent on a connection of the client's pool, their
replies read in turn, an error reply in its place: a commit carries about 12 arguments per
message, and redis-py's packing checks and encodes each of them in Python (11 arguments of a
message cost it 15 us, hiredis 2). A connection error or timeout is tried again as redis-py's
own commands are (the client's retry policy, on a new connection; the scripts make a second
application harmless).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import hiredis
import redis.asyncio
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Answers of a cluster in motion: the slot moved, or is moving, or has no primary yet.
MOVING = (MovedError, AskError, ClusterDownError, TryAgainError)
Wait = tuple[int, int] | None  # WAIT's replicas and milliseconds


def command_bytes(command: Sequence[Any]) -> bytes:
    """One command in Redis's protocol (str, bytes, int or float arguments), text as UTF-8; a
    lone surrogate (UCS-2 input can carry one) with surrogatepass, as the codec writes it."""
    try:
        return hiredis.pack_command(tuple(command))
    except UnicodeEncodeError:
        return hiredis.pack_command(
            tuple(a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a for a in command)
        )


def plain_url(url: str) -> str:
    """redis+cluster://… as the redis:// URL redis-py's clients take."""
    for scheme in ("redis+cluster://", "rediss+cluster://"):
        if url.startswith(scheme):
            return url.replace("+cluster", "", 1)
    return url


class Shards:
    def __init__(
        self, client: Any, reader: Any, url: str, cluster: bool, options: dict[str, Any], read_timeout: float
    ) -> None:
        self.client, self.reader, self.url, self.cluster = client, reader, url, cluster
        self.options, self.read_timeout = options, read_timeout
        self._primaries: dict[str, Any] = {}
        self._readers: dict[str, Any] = {}
        self._ready = False

    async def close(self) -> None:
        for c in [*self._primaries.values(), *self._readers.values()]:
            await c.aclose()
        self._primaries.clear()
        self._readers.clear()

    def _server(self, host: str, port: int, pool: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        pool = self._primaries if pool is None else pool
        name = f"{host}:{port}"
        c = pool.get(name)
        if c is None:
            parts = urlsplit(self.url)
            auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
            url = parts._replace(netloc=f"{auth}{host}:{port}", path="/0").geturl()
            c = pool[name] = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, **self.options)
        return c

    async def reading(self, key: str) -> Any:
        """The client for a blocking read of `key`: the reader's own connections, on a cluster
        to the primary now holding the key's slot, plainly (the cluster client's routing of each
        command costs more than the read's own work)."""
        if not self.cluster:
            return self.reader
        await self._slot_map()
        node = self.client.get_node_from_key(key)
        return self._server(node.host, int(node.port), self._readers, self.read_timeout)

    async def _slot_map(self) -> None:
        """The cluster client's slot map, read once (and again after refresh)."""
        if not self._ready:
            await self.client.initialize()
            self._ready = True

    async def refresh(self) -> None:
        """Read the slot map again (after MOVED or a primary that went away)."""
        if self.cluster:
            self._ready = False
            try:
                await self.client.nodes_manager.initialize()
                self._ready = True
            except Exception:
                pass  # the next commit tries again

    async def run(self, calls: list[tuple[str, list[Any]]], wait: Wait) -> list[Any]:
        """Each call (a routing key and a command) on the server of its key; the replies in the
        calls' order, an error in its place. With `wait` (replicas, ms), a reply is a
        TimeoutError when fewer replicas than asked had its pipeline's writes."""
        if not self.cluster:
            return await self._pipeline(self.client, [cmd for _, cmd in calls], wait)
        await self._slot_map()
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, (key, _) in enumerate(calls):
            node = self.client.get_node_from_key(key)
            server = self._server(node.host, int(node.port))
            groups.setdefault(f"{node.host}:{node.port}", (server, []))[1].append(i)
        replies: list[Any] = [None] * len(calls)
        done = await asyncio.gather(
            *(self._pipeline(server, [calls[i][1] for i in idx], wait) for server, idx in groups.values()),
            return_exceptions=True,
        )
        for (_, idx), result in zip(groups.values(), done, strict=True):
            for n, i in enumerate(idx):
                replies[i] = result if isinstance(result, BaseException) else result[n]
        return replies

    async def _pipeline(self, client: Any, commands: list[list[Any]], wait: Wait) -> list[Any]:
        wire = [command_bytes(cmd) for cmd in commands]
        if wait is not None:
            wire.append(command_bytes(("WAIT", *wait)))
        pool = client.connection_pool
        conn = await pool.get_connection()
        try:
            retry = conn.retry
            replies = await retry.call_with_retry(lambda: _exchange(conn, wire), lambda _: conn.disconnect())
        finally:
            await pool.release(conn)
        if wait is not None:
            got = replies.pop()
            if not isinstance(got, BaseException) and int(got) < wait[0]:
                # on the primary, not yet on enough replicas: a fail-over now could lose it
                late = RedisTimeoutError(f"WAIT: fewer than {wait[0]} replicas have it")
                replies = [late if not isinstance(r, BaseException) else r for r in replies]
        return replies


async def _exchange(conn: Any, wire: list[bytes]) -> list[Any]:
    """Send the packed commands at once and read their replies: an error reply in its place.
    (A connection that fails or is cancelled mid-way is closed by redis-py, not reused.)"""
    await conn.send_packed_command(wire)
    replies: list[Any] = []
    for _ in wire:
        try:
            replies.append(await conn.read_response())
        except ResponseError as e:
            replies.append(e)
    return replies
