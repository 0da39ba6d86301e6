"""Per-account throughput: a token bucket shared by every session of the account.

The bucket refills continuously at `throughput` tokens a second up to `burst`; a message
takes one token, and only an empty bucket refuses (ESME_RTHROTTLED). There is no minimum gap
between two PDUs and no timer: the level is worked out from the clock when a PDU arrives.
"""

from __future__ import annotations

from smppgw.config import Account
from smppgw.tokens import TokenBucket


class Throttles:
    """The buckets of all accounts, one each, shared by the sessions of a listener."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, account: Account, now: float) -> TokenBucket | None:
        """The account's bucket; None when its throughput is not limited."""
        if account.throughput <= 0:
            return None
        burst = float(account.burst or max(1.0, account.throughput))
        b = self._buckets.get(account.system_id)
        if b is None or b.rate != account.throughput or b.burst != burst:
            b = self._buckets[account.system_id] = TokenBucket(account.throughput, burst, now)
        return b

    def peek(self, system_id: str) -> TokenBucket | None:
        """The account's bucket as it is, for the admin view (None: no bucket made yet)."""
        return self._buckets.get(system_id)
