"""Password guessing, slowed per source address: each failed bind from an address waits longer
for its answer (`delay`, doubled per failure up to `delay_max`), and after `lockout_after`
failures in a row the address's binds are refused at once for `lockout_for` seconds, right
password or not. A good bind clears the address's count; failures older than `forget_after`
seconds no longer count. Sessions already bound, and binds from other addresses, never wait.

No I/O and no clock of its own: the session passes `now` (its reactor's time), so tests drive it
with twisted.internet.task.Clock. Memory is bounded: at most `max_tracked` addresses are kept,
the stalest forgotten first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


class BindGuard:
    def __init__(
        self,
        *,
        delay: float = 0.5,
        delay_max: float = 8.0,
        lockout_after: int = 10,
        lockout_for: float = 300.0,
        forget_after: float = 900.0,
        max_tracked: int = 100_000,
    ) -> None:
        self.delay, self.delay_max = delay, delay_max
        self.lockout_after, self.lockout_for = lockout_after, lockout_for
        self.forget_after, self.max_tracked = forget_after, max_tracked
        self._by_address: dict[str, _Record] = {}

    def locked(self, address: str, now: float) -> bool:
        """True while the address's binds are refused without looking at them."""
        rec = self._by_address.get(address)
        return rec is not None and now < rec.locked_until

    def failed(self, address: str, now: float) -> tuple[float, bool]:
        """A bind from `address` was refused for its credentials: (seconds to hold the answer,
        True when this failure locks the address out)."""
        rec = self._by_address.get(address)
        if rec is None or now - rec.last_at > self.forget_after:
            rec = _Record()
            self._by_address.pop(address, None)
            if len(self._by_address) >= self.max_tracked:
                self._forget_stalest(now)
            self._by_address[address] = rec
        rec.failures += 1
        rec.last_at = now
        if self.lockout_after and rec.failures >= self.lockout_after:
            rec.locked_until = now + self.lockout_for
            rec.failures = 0  # after the lockout it starts over, with the delays
            return self.delay_max, True
        return min(self.delay_max, self.delay * 2 ** (rec.failures - 1)), False

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)

    def tracked(self) -> int:
        return len(self._by_address)

    def _forget_stalest(self, now: float) -> None:
        stale = [a for a, r in self._by_address.items() if now - r.last_at > self.forget_after]
        for a in stale:
            del self._by_address[a]
        if len(self._by_address) >= self.max_tracked:
            # still full: drop the oldest tenth (dicts keep insertion order, oldest first)
            for a in list(self._by_address)[: max(1, self.max_tracked // 10)]:
                del self._by_address[a]
