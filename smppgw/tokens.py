"""A token bucket: `rate` tokens a second up to `burst`, worked out from the clock when asked
(no timer). Used for an account's submit rate (server/) and a provider's request rate
(gateway/)."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp", "refused")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst  # a new bucket is full
        self.stamp = now
        self.refused = 0  # takes that found the bucket empty (the admin view shows them)

    def take(self, now: float) -> bool:
        """One token if there is one; False (nothing taken) when the bucket is empty."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        self.refused += 1
        return False

    def level(self, now: float) -> float:
        """Tokens there would be now, without taking one."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)

    def wait(self) -> float:
        """Seconds from the last `take` until the next token (0 if one is there)."""
        return max(0.0, (1.0 - self.tokens) / self.rate)
