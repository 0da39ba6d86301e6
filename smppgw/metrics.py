"""The gateway's Prometheus metrics, in a registry of their own (no process-wide globals).

Labelled children are resolved once and cached, so the per-PDU cost is a dict lookup and an
increment. Labels are bounded: account, provider, command, status, state — never a number or
a message id.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.utils import floatToGoString


class CounterTable:
    """A labelled counter for the per-PDU and per-message paths: a dict of plain integers,
    turned into a Prometheus counter family only when scraped (no lock per increment; the
    counts are only touched from the event loop)."""

    def __init__(self, name: str, documentation: str, labels: list[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label_names = name, documentation, labels
        self.counts: dict[tuple[str, ...], int] = {}
        registry.register(self)

    def inc(self, *labels: str) -> None:
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + 1

    def value(self, *labels: str) -> int:
        return self.counts.get(labels, 0)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for labels, n in list(self.counts.items()):
            family.add_metric(list(labels), n)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.label_names)


class _Row:
    """One label set of a CounterTable, resolved once like a prometheus child."""

    __slots__ = ("counts", "labels")

    def __init__(self, counts: dict[tuple[str, ...], int], labels: tuple[str, ...]) -> None:
        self.counts, self.labels = counts, labels
        counts.setdefault(labels, 0)

    def inc(self, amount: int = 1) -> None:
        self.counts[self.labels] += amount


class GaugeTable:
    """A labelled gauge set on the per-message paths (outbox depth after every receipt): plain
    numbers in a dict, exported when scraped (no lock per set; only the event loop sets them)."""

    def __init__(self, name: str, documentation: str, labels: list[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label_names = name, documentation, labels
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def set(self, value: float, *labels: str) -> None:
        """Set the gauge of these labels (without resolving a child first)."""
        self.values[labels] = value

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.label_names)
        for labels, v in list(self.values.items()):
            family.add_metric(list(labels), v)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=self.label_names)


class _GaugeRow:
    """One label set of a GaugeTable, resolved once like a prometheus child."""

    __slots__ = ("values", "labels")

    def __init__(self, values: dict[tuple[str, ...], float], labels: tuple[str, ...]) -> None:
        self.values, self.labels = values, labels
        values.setdefault(labels, 0.0)

    def set(self, value: float) -> None:
        self.values[self.labels] = value

    def inc(self, amount: float = 1.0) -> None:
        self.values[self.labels] += amount

    def dec(self, amount: float = 1.0) -> None:
        self.values[self.labels] -= amount


class HistogramTable:
    """An unlabelled histogram observed once per message (submit latency): bucket counts in a
    list found by bisect, exported as a Prometheus histogram when scraped (no lock per observe)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = sorted(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf only)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a value equal to a bound is in it (le)
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, total = [], 0
        for bound, n in zip([*self.bounds, float("inf")], self.counts, strict=True):
            total += n
            cumulative.append((floatToGoString(bound), total))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=cumulative, sum_value=self.sum)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.pdus = CounterTable(
            "smppgw_pdus",
            "SMPP PDUs by direction, command and command_status",
            ["direction", "command", "status"],
            r,
        )
        self.bad_pdus = Counter(
            "smppgw_bad_pdus", "PDUs refused or not understood, by reason", ["reason"], registry=r
        )
        self.messages = CounterTable(
            "smppgw_messages",
            "Messages by account, provider and state reached",
            ["account", "provider", "state"],
            r,
        )
        self.submit_latency = HistogramTable(
            "smppgw_submit_latency_seconds",
            "submit_sm received to submit_sm_resp written",
            LATENCY_BUCKETS,
            r,
        )
        self.connections_refused = Counter(
            "smppgw_connections_refused",
            "SMPP connections closed at once by a flood cap, by reason",
            ["reason"],
            registry=r,
        )
        self.bind_guard = Counter(
            "smppgw_bind_guard",
            "Failed binds of one source address answered late or refused (credential guessing), by action",
            ["action"],
            registry=r,
        )
        self.bound_sessions = Gauge(
            "smppgw_bound_sessions",
            "Bound SMPP sessions by account and bind type",
            ["account", "bind"],
            registry=r,
        )
        self.receipts = CounterTable(
            "smppgw_receipts",
            "deliver_sm receipts answered by the ESME, by account, stat and result",
            ["account", "stat", "result"],
            r,
        )
        self.outbox_depth = GaugeTable(
            "smppgw_receipt_outbox",
            "deliver_sm waiting for a deliver_sm_resp (queued or in flight)",
            ["account"],
            r,
        )
        self.dispatch_queue = GaugeTable(
            "smppgw_dispatch_queue", "Messages waiting for a provider request", ["provider"], r
        )
        self.provider_requests = Counter(
            "smppgw_provider_requests",
            "Provider HTTP calls by provider, call and outcome",
            ["provider", "call", "outcome"],
            registry=r,
        )
        self.provider_latency = Histogram(
            "smppgw_provider_request_seconds",
            "Provider call duration",
            ["provider", "call"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.provider_balance = Gauge(
            "smppgw_provider_balance", "Balance the provider reports", ["provider", "currency"], registry=r
        )
        self.provider_paused = Gauge(
            "smppgw_provider_paused",
            "1 while an operator has paused the provider (no new requests), else 0",
            ["provider"],
            registry=r,
        )
        self.webhooks = Counter(
            "smppgw_webhooks",
            "Provider webhook calls by provider and result",
            ["provider", "result"],
            registry=r,
        )
        self.inbound = Counter(
            "smppgw_inbound_messages",
            "MO messages from providers by account and result",
            ["account", "result"],
            registry=r,
        )
        self._children: dict[int, dict[tuple[str, ...], Any]] = {}  # id(metric) -> labels -> child
        # (direction, command_id, status) -> the labels of `pdus` it counts under
        self.pdu_labels: dict[tuple[str, int, int], tuple[str, ...]] = {}

    def child(self, metric: MetricWrapperBase | CounterTable | GaugeTable, *labels: str) -> Any:
        children = self._children.get(id(metric))
        if children is None:
            children = self._children[id(metric)] = {}
        c = children.get(labels)
        if c is None:
            if isinstance(metric, CounterTable):
                c = children[labels] = _Row(metric.counts, labels)
            elif isinstance(metric, GaugeTable):
                c = children[labels] = _GaugeRow(metric.values, labels)
            else:
                c = children[labels] = metric.labels(*labels)
        return c

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StateGauges:
    """Gauges read at scrape time from the objects that own the state (no work per message,
    no timer): whether the store takes work, and which providers' circuit breakers are open.

    `store_healthy` is the store's `healthy()` (any store: SQLite's writer thread, a Redis
    connection); `circuits` yields (provider, open) pairs."""

    def __init__(
        self,
        store_healthy: Callable[[], bool],
        circuits: Callable[[], Iterable[tuple[str, bool]]],
        registry: CollectorRegistry,
    ) -> None:
        self.store_healthy, self.circuits = store_healthy, circuits
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "smppgw_store_up",
            "1 while the store takes work (its healthy()), else 0",
            value=_up(self.store_healthy),
        )
        family = GaugeMetricFamily(
            "smppgw_provider_circuit_open",
            "1 from the provider's circuit breaker opening until a request succeeds again "
            "(open or half-open), else 0",
            labels=["provider"],
        )
        for provider, is_open in self.circuits():
            family.add_metric([provider], 1 if is_open else 0)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:  # names only: nothing is read at registration
        yield GaugeMetricFamily("smppgw_store_up", "")
        yield GaugeMetricFamily("smppgw_provider_circuit_open", "", labels=["provider"])


def _up(healthy: Callable[[], bool]) -> int:
    try:
        return 1 if healthy() else 0
    except Exception:  # a store that cannot even say: not up
        return 0
