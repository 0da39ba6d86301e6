"""Routes: which providers (in failover order) carry a message.

A route matches on account, destination prefix and source address; among the routes that
match, the one with the longest matching prefix wins, then the first in the file. A route
with no conditions is the default.
"""

from __future__ import annotations

from smppgw.config import Route


class NoRoute(Exception):
    pass


class Router:
    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes

    def route(self, account: str, destination: str, source: str) -> tuple[str, ...]:
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
        return best.providers
