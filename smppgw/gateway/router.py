"""Routes: which providers (in failover order) carry a message.

A route matches on account, destination prefix and source address; among the routes that
match, the one with the longest matching prefix wins, then the first in the file. A route
with no conditions is the default. A route with `weights` splits traffic: each message draws
its first provider by weight, and the others follow as its failover chain. A least-cost route
orders its providers by their price for the destination (gateway/prices.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from smppgw.config import Route
from smppgw.gateway.prices import PriceBook


class NoRoute(Exception):
    pass


_CACHE_MAX = 4096


class Router:
    def __init__(self, routes: tuple[Route, ...], prices: PriceBook | None = None) -> None:
        self.routes = routes
        self.prices = prices
        # The match depends on the destination only through its first `_prefix_len` digits, so
        # (account, source, those digits) keys a cache of matches: one dict hit per message
        # instead of a walk over every route and prefix. A new Router comes with every reload.
        self._prefix_len = max((len(p) for r in routes for p in r.prefixes), default=0)
        self._cache: dict[tuple[str, str, str], Route] = {}

    def order(self, account: str, destination: str, source: str) -> Callable[[str], int]:
        """Sort key: a provider's position in the matching route as written in the config."""
        listed = self._match(account, destination, source).providers
        return lambda name: listed.index(name) if name in listed else len(listed)

    def route(self, account: str, destination: str, source: str) -> tuple[str, ...]:
        best = self._match(account, destination, source)
        if best.least_cost and self.prices is not None:
            return self.prices.cheapest_first(best.providers, destination)
        if best.weights:
            # weighted split: one provider drawn by weight goes first, the rest stay as failover
            first = random.choices(best.providers, best.weights)[0]
            return (first, *(p for p in best.providers if p != first))
        return best.providers

    def _match(self, account: str, destination: str, source: str) -> Route:
        key = (account, source, destination[: self._prefix_len])
        route = self._cache.get(key)
        if route is None:
            route = self._walk(account, destination, source)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()  # a bound, not an LRU: refilling costs one walk per key
            self._cache[key] = route
        return route

    def _walk(self, account: str, destination: str, source: str) -> Route:
        best: Route | None = None
        best_len = -1
        for route in self.routes:
            if route.accounts and account not in route.accounts:
                continue
            if route.sources and source not in route.sources:
                continue
            if route.prefixes:
                length = max((len(p) for p in route.prefixes if destination.startswith(p)), default=-1)
                if length < 0:
                    continue
            else:
                length = 0
            if length > best_len:
                best, best_len = route, length
        if best is None:
            raise NoRoute(f"no route for account {account!r}")
        return best
