"""The live view: bound sessions, accounts and providers as plain dicts (the admin API's JSON).

Rates over the last minute come from samples, not from per-PDU work: sessions keep plain
integer counters (one `+= 1` each on the hot path), and one LoopingCall for the whole process
copies them every SAMPLE_EVERY seconds into a short ring of (time, count) per session and per
provider. A rate is (count now - oldest count within the minute) / the time between them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from smppgw.gateway.dispatch import Breaker
from smppgw.web.admin import iso

if TYPE_CHECKING:
    from smppgw.gateway.core import Gateway
    from smppgw.metrics import Metrics
    from smppgw.server.factory import SmppFactory
    from smppgw.server.protocol import SmppSession

SAMPLE_EVERY = 5.0  # seconds between samples
WINDOW = 60.0  # rates over the last minute
BIND_TYPES = ("transmitter", "receiver", "transceiver")


class Rates:
    """Per key, a ring of (time, count) samples; the rate over the last WINDOW seconds."""

    def __init__(self) -> None:
        self._rings: dict[Hashable, deque[tuple[float, float]]] = {}

    def sample(self, key: Hashable, now: float, count: float) -> None:
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = deque(maxlen=int(WINDOW / SAMPLE_EVERY) + 2)
        ring.append((now, count))

    def keep(self, keys: Iterable[Hashable]) -> None:
        """Forget keys that are gone (closed sessions)."""
        alive = set(keys)
        for key in [k for k in self._rings if k not in alive]:
            del self._rings[key]

    def rate(self, key: Hashable, now: float, count: float, since: float | None = None) -> float:
        """Per second over the last minute, from the oldest sample in it to `count` at `now`.
        `since` (when counting started at 0, e.g. the bind) stands in when no sample is older."""
        base: tuple[float, float] | None = None
        for t, c in self._rings.get(key, ()):
            if now - t <= WINDOW and t < now:
                base = (t, c)
                break
        if base is None and since is not None and since < now and now - since <= WINDOW:
            base = (since, 0.0)
        if base is None or now <= base[0]:
            return 0.0
        return round((count - base[1]) / (now - base[0]), 2)


def circuit(breaker: Breaker, now: float) -> str:
    if breaker.opened_at is None:
        return "closed"
    if breaker.trial or now - breaker.opened_at >= breaker.cooldown:
        return "half-open"  # the next request (or the one in flight) decides
    return "open"


class LiveView:
    def __init__(self, factory: SmppFactory, gateway: Gateway, metrics: Metrics, clock: IReactorTime) -> None:
        self.factory, self.gateway, self.metrics, self.clock = factory, gateway, metrics, clock
        self.submits, self.deliveries, self.requests = Rates(), Rates(), Rates()
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        self._loop = LoopingCall(self.sample)
        self._loop.clock = self.clock
        self._loop.start(SAMPLE_EVERY, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def sample(self) -> None:
        now = self.clock.seconds()
        bound = self._bound()
        for s in bound:
            self.submits.sample(s, now, s.submits)
            self.deliveries.sample(s, now, s.deliveries)
        self.submits.keep(bound)
        self.deliveries.keep(bound)
        for name, count in self._request_counts().items():
            self.requests.sample(name, now, count)

    # -- views ----------------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        out = []
        for s in sorted(self._bound(), key=lambda s: (s.account, s.bound_at)):
            from_esme, to_esme = s.window_in_use()
            out.append(
                {
                    "account": s.account,
                    "bind": s.bind_name,
                    "peer": s.peer,
                    "bound_since": iso(s.bound_at),
                    "bound_for_s": round(now - s.bound_at, 1),
                    "window": {
                        "in_use": from_esme + to_esme,
                        "from_esme": from_esme,
                        "to_esme": to_esme,
                        "size": s.config.window,
                    },
                    "submits_total": s.submits,
                    "receipts_total": s.deliveries,
                    "submits_per_s": self.submits.rate(s, now, s.submits, s.bound_at),
                    "receipts_per_s": self.deliveries.rate(s, now, s.deliveries, s.bound_at),
                }
            )
        return out

    def accounts(self) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        bound: dict[str, dict[str, int]] = {}
        for s in self._bound():
            counts = bound.setdefault(s.account, dict.fromkeys(BIND_TYPES, 0))
            counts[s.bind_name or "?"] = counts.get(s.bind_name or "?", 0) + 1
        outbox = self.gateway.outbox
        out = []
        for name, account in self.gateway.accounts.items():
            oldest = outbox.oldest(name)
            bucket = self.factory.throttles.peek(name) if account.throughput > 0 else None
            burst = float(account.burst or max(1.0, account.throughput)) if account.throughput > 0 else 0.0
            tokens: float | None = None  # no limit
            if bucket is not None:
                tokens = round(bucket.level(now), 2)
            elif account.throughput > 0:
                tokens = burst  # nobody bound since start: the bucket is full
            out.append(
                {
                    "account": name,
                    "bound": bound.get(name, dict.fromkeys(BIND_TYPES, 0)),
                    "max_binds": account.max_binds,
                    "outbox_depth": outbox.depth(name),
                    "oldest_receipt_age_s": None if oldest is None else round(now - oldest, 1),
                    "throttle": {
                        "throughput": account.throughput,
                        "burst": burst,
                        "tokens": tokens,
                        "refusals": bucket.refused if bucket is not None else 0,
                    },
                }
            )
        return out

    def providers(self) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        counts = self._request_counts()
        sent = self._sent_counts()
        configured = self.gateway.config.providers
        chores = self.gateway.chores
        out = []
        for name, lane in self.gateway.dispatcher.lanes.items():
            err = lane.last_error
            balance = chores.balances.get(name)
            out.append(
                {
                    "provider": name,
                    "type": lane.provider.type,
                    "removed": name not in configured,  # left the config: tracks what it took
                    "circuit": circuit(lane.breaker, now),
                    "paused": lane.paused,
                    "in_flight": lane.in_flight,
                    "queue": len(lane.queue),
                    "last_error": None
                    if err is None
                    else {"at": iso(err[0]), "outcome": err[1], "detail": err[2]},
                    "balance": None
                    if balance is None
                    else [{"amount": b.amount, "currency": b.currency} for b in balance[1]],
                    "balance_at": iso(balance[0]) if balance is not None else None,
                    "requests_total": int(counts.get(name, 0)),
                    "requests_per_s": self.requests.rate(name, now, counts.get(name, 0)),
                    "messages_sent": sent.get(name, 0),
                }
            )
        return out

    # -- counters -------------------------------------------------------------------------

    def _bound(self) -> list[SmppSession]:
        return [s for s in self.factory.sessions if s.bind_name is not None]

    def _request_counts(self) -> dict[str, float]:
        """Provider HTTP calls of every kind (send, poll, balance…) so far, by provider."""
        out: dict[str, float] = {}
        for family in self.metrics.provider_requests.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    name = sample.labels["provider"]
                    out[name] = out.get(name, 0.0) + sample.value
        return out

    def _sent_counts(self) -> dict[str, int]:
        """Messages each provider accepted (reached ENROUTE there)."""
        out: dict[str, int] = {}
        for (_account, provider, state), n in self.metrics.messages.counts.items():
            if state == "ENROUTE":
                out[provider] = out.get(provider, 0) + n
        return out
