"""Where the Redis store's keys live: on one Redis, every key under the configured prefix P as
scripts.py lists them; on a Redis Cluster, the same keys split into partitions.

A Redis Cluster runs a script only on keys of one hash slot, so on a cluster every key carries
a hash tag. Everything of one message (its hash, its trail, its provider-id key, its receipt's
stream entry, the sets that list it) lives in its partition, `P{<tag>}`, chosen by the message
id's block of 100 (id // 100 mod `partitions`). A process takes its ids in order, so a commit's
batch mostly falls in one partition (one script call, its shared work done once), and the
partitions, and the shards, take turns every 100 messages of each process: with several
processes, all shards work at once. A commit spanning partitions sends one call to each, to
every shard at the same time. What the processes coordinate (heartbeats, binds,
token buckets, request slots, the id counter, claim locks) lives in one more slot, `P{shared}`;
it is read and written about once a second per process, not per message.

The tags are chosen so that the partitions' slots lie evenly over the 16,384 (the middle of
each 1/partitions of the range): with `redis-cli --cluster create`'s even split, every shard
holds as many partitions as the others, and adding shards later moves whole partitions.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

from redis.crc import key_slot

SLOTS = 16384
BLOCK = 100  # consecutive message ids in one partition: a commit's batch touches one or two


@lru_cache(maxsize=8)
def spread_tags(count: int) -> tuple[str, ...]:
    """`count` hash tags, the i-th hashing into the middle third of the i-th 1/count of the slots."""
    tags = []
    width = SLOTS / count
    for i in range(count):
        low, high = int(width * (i + 1 / 3)), int(width * (i + 2 / 3))
        n = 0
        while not low <= key_slot(f"p{i}.{n}".encode()) <= high:
            n += 1
        tags.append(f"p{i}.{n}")
    return tuple(tags)


class Keys:
    """Key prefixes: `shared` for what every process coordinates, `parts[p]` for partition p."""

    def __init__(self, prefix: str, partitions: int = 1) -> None:
        self.prefix = prefix
        self.count = partitions
        if partitions == 1:  # one Redis: the names every earlier version used
            self.shared = prefix
            self.parts: tuple[str, ...] = (prefix,)
        else:
            self.shared = f"{prefix}{{shared}}"
            self.parts = tuple(f"{prefix}{{{tag}}}" for tag in spread_tags(partitions))

    def of(self, message_id: str) -> int:
        """The partition of a message (an MO's or receipt's too, by its message id)."""
        if self.count == 1:
            return 0
        if message_id.isdigit():
            return int(message_id) // BLOCK % self.count
        return zlib.crc32(message_id.encode()) % self.count

    def part(self, message_id: str) -> str:
        return self.parts[self.of(message_id)]

    def route(self, p: int) -> str:
        """A key of partition p, named to a script so that the cluster runs it on p's shard."""
        return self.parts[p] + "done"

    @property
    def shared_route(self) -> str:
        return self.shared + "nodes"
