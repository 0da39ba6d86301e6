"""The load generator: asyncio, pre-encoded PDUs with patched sequence numbers, several
connections, a window of outstanding submit_sm per connection.

It measures what an ESME sees: submit_sm_resp rate and latency, and the time from submit to
the receipt carrying the same message id. It answers every deliver_sm at once, from
pre-encoded bytes, so that it does not become the bottleneck it measures.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from smppgw.smpp.codec import encode
from smppgw.smpp.concat import make_udh
from smppgw.smpp.pdu import BindTransceiver, SubmitSm

HDR = struct.Struct(">IIII")
SUBMIT_SM_RESP, DELIVER_SM, ENQUIRE_LINK, UNBIND = 0x80000004, 0x00000005, 0x00000015, 0x00000006


@dataclass
class Stats:
    sent: int = 0
    acked: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    receipts: int = 0
    resp_latency: list[float] = field(default_factory=list)
    receipt_latency: list[float] = field(default_factory=list)
    first_send: float = 0.0
    last_ack: float = 0.0
    last_receipt: float = 0.0
    # message id -> submit time; shared: a receipt may come back on any session of the account
    id_sent_at: dict[bytes, float] = field(default_factory=dict)
    # receipts that beat their submit_sm_resp (they came on another session): id -> arrival
    early: dict[bytes, float] = field(default_factory=dict)

    def receipt(self, mid: bytes, sent: float, now: float) -> None:
        self.receipts += 1
        self.receipt_latency.append(now - sent)
        self.last_receipt = max(self.last_receipt, now)


def templates(mix: bool, rd: int, texts: int = 6) -> list[bytes]:
    """Encoded submit_sm bodies to cycle through (sequence number patched per send)."""

    def sm(dest: str, text: bytes, dc: int = 0, esm: int = 0) -> bytes:
        return encode(
            SubmitSm(
                sequence_number=1,
                source_addr="BENCH",
                source_addr_ton=5,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=dest,
                short_message=text,
                data_coding=dc,
                esm_class=esm,
                registered_delivery=rd,
            )
        )

    # distinct numbers, as real traffic has (providers split repeated numbers into their own
    # requests, and long-message parts are joined by their addresses), none ending in the
    # fakes' magic 0001-0007 suffixes
    if not mix:
        return [
            sm(f"38050{i:05d}99", b"Benchmark message, plain GSM text %d" % (i % texts)) for i in range(3000)
        ]
    long_text = b"Long GSM benchmark text that needs two parts. " * 4
    out = []
    for i in range(4000):  # 3 plain, 1 UCS2, 1 two-part UDH message: 20% UCS2, 20% long
        out += [sm(f"3805{n}{i:05d}99", b"Benchmark message, plain GSM text %d" % n) for n in range(3)]
        out.append(sm(f"38067{i:05d}99", f"Привіт, це тест 👋 {i % 2}".encode("utf-16-be"), dc=8))
        ref = random.randrange(256)
        out += [
            sm(f"38063{i:05d}99", make_udh(ref, 2, n + 1) + chunk, esm=0x40)
            for n, chunk in enumerate((long_text[:153], long_text[153:]))
        ]
    return out


class Connection:
    def __init__(self, stats: Stats, window: int, bodies: list[bytes]) -> None:
        self.stats, self.window, self.bodies = stats, window, bodies
        self.seq = 1
        self.sent_at: dict[int, float] = {}
        self.slots = asyncio.Semaphore(window)
        self.receipts_done = asyncio.Event()

    async def open(self, host: str, port: int, system_id: str, password: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(
            encode(
                BindTransceiver(
                    sequence_number=1, system_id=system_id, password=password, interface_version=0x34
                )
            )
        )
        hdr = await self.reader.readexactly(16)
        length, _, status, _ = HDR.unpack(hdr)
        await self.reader.readexactly(length - 16)
        if status:
            raise RuntimeError(f"bind refused: status {status:#x}")
        self.read_task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        st, r, w = self.stats, self.reader, self.writer
        resp = bytearray(HDR.pack(17, DELIVER_SM | 0x80000000, 0, 0) + b"\0")
        try:
            while True:
                length, cmd, status, seq = HDR.unpack(await r.readexactly(16))
                body = await r.readexactly(length - 16) if length > 16 else b""
                now = time.perf_counter()
                if cmd == SUBMIT_SM_RESP:
                    t0 = self.sent_at.pop(seq, None)
                    self.slots.release()
                    if status == 0 and t0 is not None:
                        st.acked += 1
                        st.resp_latency.append(now - t0)
                        mid = body.rstrip(b"\0")
                        arrived = st.early.pop(mid, None)
                        if arrived is None:
                            st.id_sent_at[mid] = t0
                        else:
                            st.receipt(mid, t0, arrived)
                        st.last_ack = now
                    else:
                        st.refused[status] = st.refused.get(status, 0) + 1
                elif cmd == DELIVER_SM:
                    struct.pack_into(">I", resp, 12, seq)
                    w.write(resp)
                    i = body.find(b"id:")
                    if i >= 0:
                        mid = body[i + 3 : body.index(b" ", i)]
                        t0 = st.id_sent_at.pop(mid, None)
                        if t0 is not None:
                            st.receipt(mid, t0, now)
                        else:
                            st.early[mid] = now
                elif cmd in (ENQUIRE_LINK, UNBIND):
                    w.write(HDR.pack(16, cmd | 0x80000000, 0, seq))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def send(
        self, n: int, rate: float | None = None, start: float = 0.0, stride: int = 1, offset: int = 0
    ) -> None:
        bodies, w, st = self.bodies, self.writer, self.stats
        for i in range(n):
            if rate:
                due = start + (offset + i * stride) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.slots.acquire()
            self.seq = self.seq % 0x7FFFFFFF + 1
            pdu = bytearray(bodies[(offset + i * stride) % len(bodies)])  # connections share the cycle
            struct.pack_into(">I", pdu, 12, self.seq)
            self.sent_at[self.seq] = time.perf_counter()
            w.write(pdu)
            st.sent += 1
            if w.transport.get_write_buffer_size() > 1 << 20:
                await w.drain()

    async def close(self) -> None:
        try:
            self.writer.write(HDR.pack(16, UNBIND, 0, 0x7FFFFFFF))
            await self.writer.drain()
            self.writer.close()
        except ConnectionError:
            pass
        self.read_task.cancel()


async def run_load(
    host: str,
    port: int | Sequence[int],
    count: int,
    connections: int,
    window: int,
    mix: bool = False,
    texts: int = 6,
    rate: float | None = None,
    rd: int = 1,
    timeout: float = 120.0,
    system_id: str = "bench",
    password: str = "bench",
) -> Stats:
    """`port`: one port, or several (gateway nodes): connection i goes to port i mod their number."""
    ports = [port] if isinstance(port, int) else list(port)
    stats = Stats()
    bodies = templates(mix, rd, texts)
    conns = [Connection(stats, window, bodies) for _ in range(connections)]
    await asyncio.gather(
        *(c.open(host, ports[i % len(ports)], system_id, password) for i, c in enumerate(conns))
    )
    per = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    stats.first_send = start = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(c.send(n, rate, start, connections, i) for i, (c, n) in enumerate(zip(conns, per, strict=True)))
        ),
        timeout,
    )
    end = time.perf_counter() + timeout
    while (
        stats.acked + sum(stats.refused.values()) < count or (rd and stats.receipts < stats.acked)
    ) and time.perf_counter() < end:
        await asyncio.sleep(0.01)
    for c in conns:
        await c.close()
    return stats


async def hold_idle(host: str, port: int, sessions: int, system_id: str, password: str) -> list[Connection]:
    conns = []
    for _ in range(sessions):
        c = Connection(Stats(), 1, [])
        await c.open(host, port, system_id, password)
        conns.append(c)
    return conns
