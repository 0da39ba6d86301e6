"""The Redis store on a real three-primary Redis Cluster (issue 16): a commit's messages spread
over every primary, partition by partition, each script on one slot (the cluster refuses any
other with CROSSSLOT); what the processes share sits in one slot; a dead process's unfinished
work in every partition goes to the one claiming it, and the claim leaves no trace."""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
import redis
from redis.cluster import RedisCluster

from smppgw.store.base import InsertMessage
from smppgw.store.redis.keys import Keys, spread_tags
from smppgw.store.redis.shards import plain_url
from tests.aio import aio
from tests.redis.kit import close, get, make_store, message, write
from tests.redisd import prefix

CLUSTER = {"cluster": True}


@pytest.fixture
def keys(redis_cluster):
    return redis_cluster, prefix()


def primaries(url: str) -> list[redis.Redis]:
    rc = RedisCluster.from_url(plain_url(url))
    try:
        return [redis.Redis(host=n.host, port=n.port) for n in rc.get_primaries()]
    finally:
        rc.close()


def test_the_partitions_lie_evenly_on_an_even_split_of_the_slots():
    k = Keys("P:", 12)
    slots = [redis.crc.key_slot(part.encode()) for part in k.parts]
    assert len(set(slots)) == 12 and len(set(spread_tags(12))) == 12
    thirds = Counter(slot * 3 // 16384 for slot in slots)  # redis-cli's split for 3 primaries
    assert thirds == {0: 4, 1: 4, 2: 4}
    # blocks of 100 ids take turns: a batch of consecutive ids is mostly one partition's
    assert k.part("0000000013") == k.part("0000000099") == k.parts[0] and k.part("0000000113") == k.parts[1]
    assert k.part("0000001213") == k.parts[0] and k.shared == "P:{shared}"
    assert Keys("P:", 1).part("0000000013") == "P:"  # one Redis: the names of before


@pytest_twisted.ensureDeferred
async def test_one_commit_spreads_its_messages_over_every_primary(keys):
    async def body():
        url, p = keys
        store, _ = make_store(url, p, "n1", store=CLUSTER)
        batch = [message(i * 20) for i in range(60)]  # five in each block of 100 ids
        assert await write(store, [InsertMessage(m) for m in batch]) is None  # one commit
        per_primary = [len(list(r.scan_iter(match=f"{p}{{*}}m:*", count=1000))) for r in primaries(url)]
        assert per_primary == [20, 20, 20]  # 12 partitions, 4 on each primary, 5 messages each
        for m in (batch[0], batch[31], batch[59]):
            back = await get(store, m.id)
            assert back is not None and back.text == m.text
        rc = RedisCluster.from_url(plain_url(url))
        assert rc.sismember(f"{p}{{shared}}nodes", "n1") and rc.exists(f"{p}{{shared}}node:n1")
        rc.close()
        await close(store)

    await aio(body())


@pytest_twisted.ensureDeferred
async def test_a_dead_process_s_work_in_every_partition_is_claimed_once(keys):
    async def body():
        url, p = keys
        a, _ = make_store(url, p, "a", attach=False, store=CLUSTER)
        b, _ = make_store(url, p, "b", attach=False, store=CLUSTER)
        c, _ = make_store(url, p, "c", attach=False, store=CLUSTER)
        open_ids = [message(i * 50) for i in range(24)]  # two in each partition
        await write(a, [InsertMessage(m) for m in open_ids])
        rc = RedisCluster.from_url(plain_url(url))
        rc.delete(f"{p}{{shared}}node:a")  # its heartbeat expired
        got = await b.lease.claim("a")
        assert sorted(got) == sorted(m.id for m in open_ids)
        assert await c.lease.claim("a") is None  # claimed already: nothing twice
        assert rc.hgetall(f"{p}{{shared}}claims") == {}  # the claim finished
        for part in a.keys.parts:
            assert rc.scard(f"{part}open:a") == 0 and rc.scard(f"{part}open:b") == 2
        assert rc.hget(f"{a.keys.part(open_ids[5].id)}m:{open_ids[5].id}", "node") == b"b"
        rc.close()
        await close(a, b, c)

    await aio(body())
