"""Prices per provider and destination, for least-cost routes.

A provider's price for a number comes from its config table `prices` (destination prefix →
price, longest prefix wins) or, for a provider whose API publishes prices (SMS-fly's
GETPRICELIST, per mobile network "mcc-mnc"), from that list, fetched periodically, through
the provider's `networks` table (destination prefix → "mcc-mnc"). No price known: the
provider sorts after those with one.
"""

from __future__ import annotations

from smppgw.config import ProviderSettings


def _longest(table: dict[str, object], number: str) -> object | None:
    best = None
    best_len = -1
    for prefix, value in table.items():
        if number.startswith(prefix) and len(prefix) > best_len:
            best, best_len = value, len(prefix)
    return best


class PriceBook:
    def __init__(self, settings: dict[str, ProviderSettings]) -> None:
        self.settings = settings
        self.published: dict[str, dict[str, float]] = {}  # provider -> {"mcc-mnc": price}

    def update(self, provider: str, prices: dict[str, float]) -> None:
        self.published[provider] = dict(prices)

    def price(self, provider: str, destination: str) -> float | None:
        s = self.settings.get(provider)
        if s is None:
            return None
        static = _longest(s.prices, destination)
        if static is not None:
            return float(static)  # type: ignore[arg-type]
        network = _longest(s.networks, destination)
        if network is None:
            return None
        return self.published.get(provider, {}).get(str(network))

    def cheapest_first(self, providers: tuple[str, ...], destination: str) -> tuple[str, ...]:
        def key(item: tuple[int, str]) -> tuple[bool, float, int]:
            i, name = item
            p = self.price(name, destination)
            return (p is None, p if p is not None else 0.0, i)

        return tuple(name for _, name in sorted(enumerate(providers), key=key))
