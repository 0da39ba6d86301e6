"""The scrape-time gauges alone: they read the store's healthy() and the breakers on each
scrape, so they follow the state without any work per message."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from smppgw.metrics import Metrics, StateGauges


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_store_up_and_circuit_open_follow_their_sources_at_each_scrape():
    metrics = Metrics()
    state = {"healthy": True, "circuits": [("a", False), ("b", True)]}
    StateGauges(lambda: state["healthy"], lambda: state["circuits"], metrics.registry)
    got = samples(metrics)
    assert got[("smppgw_store_up", ())] == 1
    assert got[("smppgw_provider_circuit_open", (("provider", "a"),))] == 0
    assert got[("smppgw_provider_circuit_open", (("provider", "b"),))] == 1
    state.update(healthy=False, circuits=[("a", True), ("b", False), ("c", False)])
    got = samples(metrics)
    assert got[("smppgw_store_up", ())] == 0
    assert [got[("smppgw_provider_circuit_open", (("provider", p),))] for p in "abc"] == [1, 0, 0]


def test_a_store_whose_health_check_raises_counts_as_down():
    metrics = Metrics()

    def broken() -> bool:
        raise ConnectionError("redis gone")

    StateGauges(broken, lambda: [], metrics.registry)
    assert samples(metrics)[("smppgw_store_up", ())] == 0
