"""The listener's open sessions, and how many have not bound yet in all and per source address:
what the factory's flood caps read on every new connection, counted as sessions come, bind and
go (no scan of every session per connection)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any


class Sessions:
    def __init__(self) -> None:
        self._open: dict[Any, str] = {}  # session -> its source address, while connected
        self._bound: set[Any] = set()
        self.unbound_by_address: Counter[str] = Counter()

    def add(self, session: Any, address: str) -> None:
        if session in self._open:
            return
        self._open[session] = address
        self.unbound_by_address[address] += 1

    def bound(self, session: Any) -> None:
        address = self._open.get(session)
        if address is None or session in self._bound:
            return
        self._bound.add(session)
        self._uncount(address)

    def discard(self, session: Any) -> None:
        address = self._open.pop(session, None)
        if address is None:
            return
        if session in self._bound:
            self._bound.discard(session)
        else:
            self._uncount(address)

    @property
    def unbound(self) -> int:
        return len(self._open) - len(self._bound)

    def _uncount(self, address: str) -> None:
        left = self.unbound_by_address[address] - 1
        if left > 0:
            self.unbound_by_address[address] = left
        else:
            del self.unbound_by_address[address]

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._open))

    def __contains__(self, session: object) -> bool:
        return session in self._open
