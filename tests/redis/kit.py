"""Redis stores on a real redis-server for unit tests: several "processes" (stores with their own
node names) in one test, a sink that records what each store hands the gateway, and awaitable
forms of the store's callbacks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from smppgw.config import DispatchConfig, ReceiptConfig, StoreConfig
from smppgw.gateway.receipts import final_receipt
from smppgw.store.base import MessageRecord, OutboxRecord
from smppgw.store.redis.codec import message_from_hash
from smppgw.store.redis.store import RedisStore


@dataclass
class Sink:
    """What a store hands to its gateway, recorded."""

    delivered: list[OutboxRecord] = field(default_factory=list)
    forwarded: list[tuple[str, Any]] = field(default_factory=list)
    claimed: list[MessageRecord] = field(default_factory=list)
    dropped: list[tuple[str, str, int, str]] = field(default_factory=list)
    fenced_count: int = 0
    waiting_counts: dict[str, int] = field(default_factory=dict)

    def deliver(self, record: OutboxRecord) -> None:
        self.delivered.append(record)

    def forwarded_report(self, provider: str, report: Any) -> None:
        self.forwarded.append((provider, report))

    def claimed_records(self, records: list[MessageRecord]) -> None:
        self.claimed.extend(records)

    def fenced(self) -> None:
        self.fenced_count += 1

    def receipt_dropped(self, account: str, message_id: str, state: int, why: str) -> None:
        self.dropped.append((account, message_id, state, why))


class _Adapter:
    """StoreSink's method names onto Sink's fields."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def deliver(self, record: OutboxRecord) -> None:
        self.sink.deliver(record)

    def forwarded(self, provider: str, report: Any) -> None:
        self.sink.forwarded_report(provider, report)

    def claimed(self, records: list[MessageRecord]) -> None:
        self.sink.claimed_records(records)

    def fenced(self) -> None:
        self.sink.fenced()

    def receipt_dropped(self, account: str, message_id: str, state: int, why: str) -> None:
        self.sink.receipt_dropped(account, message_id, state, why)

    def waiting(self, counts: dict[str, int]) -> None:
        self.sink.waiting_counts = counts

    def receipt_for(self, record: MessageRecord) -> OutboxRecord:
        return final_receipt(record)


def make_store(
    url: str,
    prefix: str,
    node: str,
    *,
    attach: bool = True,
    store: dict[str, Any] | None = None,
    **receipts: Any,
) -> tuple[RedisStore, Sink]:
    config = StoreConfig(
        type="redis", url=url, key_prefix=prefix, node=node, claim_after=3.0, **(store or {})
    )
    store = RedisStore(config, ReceiptConfig(**receipts), DispatchConfig())
    sink = Sink()
    store.snapshot = store.open()  # type: ignore[attr-defined]
    if attach:
        store.attach(_Adapter(sink))
    return store, sink


async def write(store: RedisStore, ops: list[Any]) -> BaseException | None:
    fut: asyncio.Future[BaseException | None] = asyncio.get_event_loop().create_future()
    store.write(ops, fut.set_result)
    return await asyncio.wait_for(fut, 10)


async def get(store: RedisStore, message_id: str) -> MessageRecord | None:
    fut: asyncio.Future[MessageRecord | None] = asyncio.get_event_loop().create_future()
    store.get_message(message_id, fut.set_result)
    return await asyncio.wait_for(fut, 10)


def settled(r: Any, key: str) -> tuple[int, float | None, str]:
    """(receipt, receipt_at, receipt_to) of the message hash at `key`, read as the store reads it."""
    m = message_from_hash(r.hgetall(key))
    assert m is not None, key
    return m.receipt, m.receipt_at, m.receipt_to


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Loop turns (and Redis round trips) until `predicate()` holds."""
    loop = asyncio.get_event_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)  # letting the store's tasks reach Redis, not a timer under test


async def close(*stores: RedisStore) -> None:
    for s in stores:
        await s._close(grace=2.0)


def message(i: int, state: int = 0, **kw: Any) -> MessageRecord:
    return MessageRecord(
        id=f"{i:010d}",
        account=kw.pop("account", "demo"),
        source="SRC",
        source_ton=5,
        source_npi=0,
        destination="380501234567",
        dest_ton=1,
        dest_npi=1,
        text=kw.pop("text", f"hello {i}"),
        data_coding=0,
        esm_class=0,
        registered_delivery=1,
        submitted_at=1000.0 + i,
        state=state,
        **kw,
    )


def receipt(record: MessageRecord, on_row: bool = True) -> OutboxRecord:
    from smppgw.gateway.receipts import build_receipt

    return build_receipt(record, record.state if record.state >= 2 else 1, 2000.0, on_row=on_row)
