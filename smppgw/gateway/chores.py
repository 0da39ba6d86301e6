"""Periodic provider calls: balances (exported as a gauge), sender lists (cached, for accounts
with strict senders), price lists (least-cost routes) and MO polling where the API has one.
Each runs on its own interval from the provider's config table; a failed call is logged,
counted and tried again next interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from smppgw.aio import start
from smppgw.config import ProviderSettings
from smppgw.gateway.prices import PriceBook
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import Balance, Inbound, NotSupported, Provider, ProviderError

log = logging.getLogger("smppgw.chores")


class Chores:
    def __init__(
        self,
        providers: dict[str, Provider],
        settings: dict[str, ProviderSettings],
        clock: IReactorTime,
        metrics: Metrics,
        on_inbound: Callable[[str, Inbound], None],
        prices: PriceBook | None = None,
    ) -> None:
        self.providers, self.settings, self.clock, self.metrics = providers, settings, clock, metrics
        self.on_inbound = on_inbound
        self.prices = prices
        self.senders: dict[str, frozenset[str]] = {}  # provider -> sender names it accepts
        self.balances: dict[str, tuple[float, list[Balance]]] = {}  # provider -> (when, balances)
        self._calls: list[IDelayedCall] = []
        self._stopped = False

    def start(self) -> None:
        for name, p in self.providers.items():
            s = self.settings.get(name)
            if s is None:
                continue
            caps = p.capabilities
            if caps.balance and s.balance_interval:
                self._every(s.balance_interval, name, "balance", self._balance)
            if caps.senders and s.senders_interval:
                self._every(s.senders_interval, name, "senders", self._senders)
            if caps.inbound_poll and s.inbound_interval:
                self._every(s.inbound_interval, name, "inbound", self._inbound)
            if hasattr(p, "prices") and s.prices_interval and s.networks:
                self._every(s.prices_interval, name, "prices", self._prices)

    def stop(self) -> None:
        self._stopped = True
        for call in self._calls:
            if call.active():
                call.cancel()

    def sender_known(self, provider: str, source: str) -> bool | None:
        """Whether the provider lists `source` as a sender; None while no list is known."""
        names = self.senders.get(provider)
        return None if names is None else source in names

    def _every(self, interval: float, name: str, call: str, fn: Callable[[str], Awaitable[None]]) -> None:
        async def run() -> None:
            t0 = time.perf_counter()
            outcome = "ok"
            try:
                await fn(name)
            except NotSupported:
                outcome = "unsupported"
            except ProviderError as e:
                outcome = "retryable" if e.retryable else "refused"
                event(log, f"{call}_failed", logging.WARNING, provider=name, detail=e.detail)
            except Exception:
                outcome = "error"
                log.exception("event=%s_crashed provider=%s", call, name)
            self.metrics.child(self.metrics.provider_requests, name, call, outcome).inc()
            self.metrics.child(self.metrics.provider_latency, name, call).observe(time.perf_counter() - t0)
            if not self._stopped and outcome != "unsupported":
                self._calls.append(self.clock.callLater(interval, tick))

        def tick() -> None:
            self._calls = [c for c in self._calls if c.active()]
            start(run())

        self._calls.append(self.clock.callLater(0, tick))

    async def _balance(self, name: str) -> None:
        balances = await self.providers[name].balance()
        self.balances[name] = (self.clock.seconds(), balances)
        for b in balances:
            self.metrics.child(self.metrics.provider_balance, name, b.currency).set(b.amount)

    async def _senders(self, name: str) -> None:
        self.senders[name] = frozenset(await self.providers[name].senders())

    async def _prices(self, name: str) -> None:
        table = await self.providers[name].prices()  # type: ignore[attr-defined]
        if self.prices is not None:
            self.prices.update(name, table)

    async def _inbound(self, name: str) -> None:
        for item in await self.providers[name].inbound():
            self.on_inbound(name, item)
