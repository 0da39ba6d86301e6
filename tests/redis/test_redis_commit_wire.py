"""What a commit sends Redis: its ops as arguments of their own, as few as a message needs
(codec.encode_ops), packed in C and sent on a pooled connection (shards.py): an error reply in
its place, a connection Redis closed replaced without the commit failing."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import pytest
import pytest_twisted
import redis
from redis.exceptions import NoScriptError, ResponseError

from smppgw.store.base import (
    RECEIPT_DELIVERED,
    RECEIPT_OWED,
    AddOutbox,
    InsertMessage,
    ReceiptDone,
    UpdateMessage,
)
from smppgw.store.redis import codec
from smppgw.store.redis.codec import encode_ops
from smppgw.store.redis.shards import command_bytes
from tests.aio import aio
from tests.redis.kit import close, get, make_store, message, receipt, write
from tests.redisd import prefix


@pytest.fixture
def keys(redis_server):
    return redis_server, prefix()


def final(i: int):
    m = message(i, state=2, provider="sim", provider_id=f"p{i}", done_at=1500.0)
    m.receipt = RECEIPT_OWED
    return m


def test_a_message_s_three_writes_cost_twelve_arguments_and_a_receipt_owed_here_rides_on_its_final_state():
    new = message(1)
    args, count, added = encode_ops([InsertMessage(new)], 1000.0, {})
    assert (args[0], args[1:3], count, added) == (0, ["i", new.id], 1, [])
    assert args[3] == codec.packed(new) and len(args) == 4  # its `d`, nothing else set

    # two final states with their receipts; room here for one: the first rides on its final
    # state (no entry), the second is an A op with its entry; the adds in the script's order
    a, b = final(1), final(2)
    ra, rb = receipt(a), receipt(b)
    ops = [UpdateMessage(b), AddOutbox(rb), UpdateMessage(a), AddOutbox(ra)]
    rooms = {"demo": 1}
    args, count, added = encode_ops(ops, 1000.0, {}, rooms)
    assert args[0] == 2 and count == 4 and rooms == {"demo": 0}
    finals = [args[1 + 6 * k : 7 + 6 * k] for k in range(2)]
    assert [f[0] for f in finals] == [b.id, a.id]
    assert [f[4] for f in finals] == ["+demo", "1"]  # b's receipt owed here; a's in its A op
    assert args[13:16] == ["A", "demo", a.id] and args[16]  # with its entry
    assert len(args) == 17
    assert added == [rb, ra]

    # settled: without a stream entry 3 arguments, with one 5
    held = {f"{a.id}/final": ("demo", "1-1", 0)}
    args, _, _ = encode_ops(
        [
            ReceiptDone(b.id, RECEIPT_DELIVERED, 1600.0, "x"),
            ReceiptDone(a.id, RECEIPT_DELIVERED, 1601.0, "y"),
        ],
        1000.0,
        held,
    )
    assert args[0] == 0 and args[1:3] == ["d", b.id] and args[4:8] == ["D", a.id, args[6], "demo"]
    assert args[8] == "1-1" and len(args) == 9


def test_text_with_a_lone_surrogate_is_packed_as_the_codec_writes_it():
    assert command_bytes(("SET", "k", "a\udc80")) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\xed\xb2\x80\r\n"
    assert command_bytes(("INCRBY", "k", 5)) == b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$1\r\n5\r\n"


@pytest_twisted.ensureDeferred
async def test_an_error_reply_comes_back_in_its_place_and_the_connection_serves_on(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        key = f"{p}wire"
        got = await store.shards.run(
            [(key, ["SET", key, "1"]), (key, ["EVALSHA", "0" * 40, 0]), (key, ["INCRBY", key, 2])], None
        )
        assert got[0] is True or got[0] == b"OK"
        assert isinstance(got[1], NoScriptError)
        assert got[2] == 3
        assert await store.shards.run([(key, ["GET", key])], None) == [b"3"]
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_an_op_the_commit_script_does_not_know_is_an_error_reply_that_names_it(keys):
    """Arguments out of step (a programming error) fail loudly, not as ops read askew."""

    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        k, sha = store.keys, store.scripts.shas["commit"]
        head = ["EVALSHA", sha, 1, k.route(0), k.parts[0], "n1", "1000.0", 100, 1000, 1000, ""]
        (got,) = await store.shards.run([(k.route(0), [*head, 0, "i", "0000000001", "[]", "Z", "x"])], None)
        assert isinstance(got, ResponseError) and "unknown op Z at argument 12" in str(got)
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_connection_redis_closed_between_commits_is_replaced_and_nothing_is_refused(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", attach=False)
        assert await write(store, [InsertMessage(message(1))]) is None
        r = redis.Redis.from_url(url)
        me = r.client_id()
        killed = r.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1 and r.client_id() == me
        assert await write(store, [InsertMessage(message(2))]) is None  # on a new connection
        assert (await get(store, message(2).id)) is not None
        assert store.healthy()
        await close(store)

    await aio(body())


class DropFirstCommit:
    """A TCP proxy on loopback to a redis-server (threads: the store's start-up talks to Redis
    synchronously) that, while armed, closes the connection that carries a commit (EVALSHA)
    without passing it on, once."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname, parts.port)
        self.armed = False
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while data := src.recv(65536):
                if watch and self.armed and b"EVALSHA" in data:
                    self.armed, self.dropped = False, self.dropped + 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self) -> None:
        self.listener.close()


@pytest_twisted.ensureDeferred
async def test_a_commit_whose_connection_drops_mid_way_is_sent_again_on_a_new_one(keys):
    async def body():
        url, p = keys
        proxy = DropFirstCommit(url)
        store, _ = make_store(proxy.url, p, "n1", attach=False)
        assert await write(store, [InsertMessage(message(1))]) is None
        proxy.armed = True
        assert await write(store, [InsertMessage(message(2))]) is None  # not refused
        assert proxy.dropped == 1
        assert (await get(store, message(2).id)) is not None and store.healthy()
        await close(store)
        proxy.stop()

    await aio(body())
