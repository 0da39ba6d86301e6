"""Per-account throughput: a token bucket shared by every session of the account (and, with a
store shared by several gateway processes, by the sessions of every process: the store makes
the bucket).

The bucket refills continuously at `throughput` tokens a second up to `burst`; a message
takes one token, and only an empty bucket refuses (ESME_RTHROTTLED). There is no minimum gap
between two PDUs and no timer: the level is worked out from the clock when a PDU arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from smppgw.config import Account
from smppgw.store.base import Bucket
from smppgw.tokens import TokenBucket

MakeBucket = Callable[[str, float, float, float], Bucket]  # (name, rate, burst, now)


def _local(name: str, rate: float, burst: float, now: float) -> Bucket:
    return TokenBucket(rate, burst, now)


class Throttles:
    """The buckets of all accounts, one each, shared by the sessions of a listener."""

    def __init__(self, make: MakeBucket = _local) -> None:
        self._make = make
        self._buckets: dict[str, Bucket] = {}

    def bucket(self, account: Account, now: float) -> Bucket | None:
        """The account's bucket; None when its throughput is not limited."""
        if account.throughput <= 0:
            return None
        burst = float(account.burst or max(1.0, account.throughput))
        b = self._buckets.get(account.system_id)
        if b is None or b.rate != account.throughput or b.burst != burst:
            b = self._buckets[account.system_id] = self._make(
                f"account:{account.system_id}", account.throughput, burst, now
            )
        return b

    def peek(self, system_id: str) -> Bucket | None:
        """The account's bucket as it is, for the admin view (None: no bucket made yet)."""
        return self._buckets.get(system_id)
