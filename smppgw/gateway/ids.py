"""Message ids: one opaque string per message, the same in submit_sm_resp, the receipt text
and receipted_message_id. Numbers come from one counter whose high-water mark is stored with
every batch, so ids are not reused after a restart; the string form is per account
(decimal or hex, bounded length) because legacy ESMEs keep ids in narrow columns.

When several processes share the store, each takes numbers in blocks from the store's one
counter (`reserve`), asking for the next block while half of the current one is left, so an id
is unique across all of them and issuing one never waits for the store.
"""

from __future__ import annotations

from collections.abc import Callable

Reserve = Callable[[int, Callable[[int | None], None]], None]


class IdsExhausted(Exception):
    """The current block of numbers is used up and the next has not come (the store is down)."""


class IdIssuer:
    def __init__(
        self, next_number: int, limit: int | None = None, reserve: Reserve | None = None, block: int = 10_000
    ) -> None:
        self.next_number = next_number
        self.limit = limit  # numbers below it are ours; None: no limit
        self._reserve, self._block = reserve, block
        self._next_block: int | None = None  # first number of a block reserved ahead
        self._asking = False

    @property
    def high(self) -> int:
        """The highest number issued so far."""
        return self.next_number - 1

    def issue(self, fmt: str = "decimal", length: int = 10) -> str:
        n = self.next_number
        if self.limit is not None:
            if self.limit - n <= self._block // 2:
                self._ahead()
            if n >= self.limit:
                if self._next_block is None:
                    raise IdsExhausted("no message ids left in this block; the next one has not come")
                n, self.limit, self._next_block = self._next_block, self._next_block + self._block, None
        self.next_number = n + 1
        return format_id(n, fmt, length)

    def _ahead(self) -> None:
        if self._asking or self._next_block is not None or self._reserve is None:
            return
        self._asking = True
        self._reserve(self._block, self._reserved)

    def _reserved(self, first: int | None) -> None:
        self._asking = False
        if first is not None:
            self._next_block = first


def format_id(n: int, fmt: str, length: int) -> str:
    if fmt == "hex":
        return format(n % (16**length), f"0{length}x")
    return str(n % (10**length)).zfill(length)
