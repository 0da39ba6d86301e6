"""A Redis Cluster primary killed mid-load, its replica promoted (issue 16): with
`wait_replicas = 1` every commit the gateway acknowledged was on a replica too, so every acked
id reaches exactly one final receipt, those acked on the killed primary whose receipts were still
owed included; submits while the slots move, and while the promoted primary has no replica of
its own, are refused (ESME_RSYSERR, sent again by the ESME), never lost."""

from __future__ import annotations

import time
from collections import Counter

import smpplib.consts
from redis.cluster import RedisCluster

from smppgw.config import StoreConfig
from smppgw.redisd import RedisClusterServers
from smppgw.store.redis.keys import Keys
from smppgw.store.redis.shards import plain_url
from tests.e2e.harness import connect, receipt_fields
from tests.e2e.nodes import Node
from tests.e2e.test_cluster import collect


def test_a_primary_killed_and_its_replica_promoted_loses_no_acked_message(tmp_path):
    cluster = RedisClusterServers(tmp_path / "cluster", replicas=1, appendonly=True).start()
    gw = None
    try:
        store = {"type": "redis", "url": cluster.url, "claim_after": 3, "wait_replicas": 1, "wait_timeout": 2}
        # receipts 2 s after the submit: what was acked just before the kill finishes after it
        sim = {"sim": {"type": "simulator", "delay": 2.0}}
        gw = Node(tmp_path, "a", store, providers=sim).start()
        rx = connect(gw.smpp, kind="receiver")
        tx = connect(gw.smpp, kind="transmitter")

        def wave(first: int) -> None:
            sent = len(tx.resps)
            for j in range(first, first + 40):  # a wave within the window
                tx.submit(dest=f"38050{j:05d}99", text=b"failover %d" % j)
            assert tx.pump(lambda: len(tx.resps) >= sent + 40, timeout=30)
            rx.pump(lambda: False, timeout=0.01)  # the receiver keeps reading its receipts

        n = 0
        while n < 360:
            wave(n)
            n += 40
        # the victim: the primary of the partition the latest messages went to
        keys, slots = Keys(StoreConfig().key_prefix, 12), RedisCluster.from_url(plain_url(cluster.url))
        port = slots.get_node_from_key(keys.part(tx.resps[-1].message_id.decode()) + "done").port
        held = {part for part in keys.parts if slots.get_node_from_key(part + "done").port == port}
        slots.close()
        victim = next(s for s in cluster.servers if s.port == port)
        on_victim = [p.message_id.decode() for p in tx.resps if keys.part(p.message_id.decode()) in held]
        assert len(on_victim) >= 50  # acked there, their receipts still owed: 2 s to go
        replica = next(s for s in cluster.servers if cluster.role_of(s.port) == "slave"
                       and cluster.master_of(s.port) == victim.port)  # fmt: skip
        victim.kill()  # mid-load: its replica takes over after cluster-node-timeout (1 s)
        killed_at = len(tx.resps)
        deadline = time.monotonic() + 20
        while cluster.role_of(replica.port) != "master":  # load goes on while the slots move
            assert time.monotonic() < deadline, "the replica was promoted"
            wave(n)
            n += 40
        # The promoted primary has no replica yet: with wait_replicas = 1 its partitions refuse
        # (a second loss now would lose what it acked) until the old primary is back as its replica.
        victim.start()
        cluster.wait_ok()
        deadline = time.monotonic() + 40
        while sum(p.status == 0 for p in tx.resps[killed_at:]) < 400:
            assert time.monotonic() < deadline, "the gateway takes submits again once a replica follows"
            wave(n)
            n += 40
        statuses = Counter(p.status for p in tx.resps)
        acked = [p.message_id.decode() for p in tx.resps if p.status == 0]
        refused = len(tx.resps) - len(acked)
        assert set(statuses) <= {0, smpplib.consts.SMPP_ESME_RSYSERR}, statuses
        assert all(p.status == 0 for p in tx.resps[:killed_at]), "all acked before the kill"
        assert len(acked) >= 760, (len(acked), refused)
        assert cluster.role_of(victim.port) == "slave", "the old primary came back as a replica"
        got = collect(rx, acked, timeout=40)
        missing = set(acked) - set(got)
        assert not missing and max(got.values()) == 1, (len(missing), max(got.values()))
        assert {receipt_fields(r)["stat"] for r in rx.receipts} == {"DELIVRD"}
        print(f"\nfail-over: {len(acked)} acked ({len(on_victim)} on the killed primary before it died), "
              f"{refused} refused while the slots moved, "
              f"{sum(got.values())} receipts, none missing, none twice")  # fmt: skip
        tx.close()
        rx.close()
        assert gw.stop() == 0
    finally:
        if gw is not None:
            gw.stop()
        cluster.stop()
