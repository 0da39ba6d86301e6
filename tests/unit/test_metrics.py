"""The lock-free metric tables of the per-message paths export what prometheus-client's own
classes would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from smppgw.metrics import Metrics


def samples(m: Metrics, name: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            if s.name.startswith(name):
                out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def test_submit_latency_buckets_are_cumulative_and_a_value_on_a_bound_is_in_it() -> None:
    m = Metrics()
    for v in (0.0005, 0.0004, 0.003, 9.0):
        m.submit_latency.observe(v)
    got = samples(m, "smppgw_submit_latency_seconds")
    assert got[("smppgw_submit_latency_seconds_bucket", ("le", "0.0005"))] == 2
    assert got[("smppgw_submit_latency_seconds_bucket", ("le", "0.005"))] == 3
    assert got[("smppgw_submit_latency_seconds_bucket", ("le", "5.0"))] == 3
    assert got[("smppgw_submit_latency_seconds_bucket", ("le", "+Inf"))] == 4
    assert got[("smppgw_submit_latency_seconds_count",)] == 4
    assert abs(got[("smppgw_submit_latency_seconds_sum",)] - 9.0039) < 1e-9


def test_gauge_rows_set_inc_and_dec_per_label_set() -> None:
    m = Metrics()
    row = m.child(m.outbox_depth, "demo")
    assert m.child(m.outbox_depth, "demo") is row
    row.set(5)
    row.inc()
    row.dec(2)
    m.child(m.outbox_depth, "other").set(1)
    got = samples(m, "smppgw_receipt_outbox")
    assert got == {
        ("smppgw_receipt_outbox", ("account", "demo")): 4.0,
        ("smppgw_receipt_outbox", ("account", "other")): 1.0,
    }
