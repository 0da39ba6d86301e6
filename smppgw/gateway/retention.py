"""Retention: final messages (and their trail) are kept `keep_final` seconds, for query_sm and
the operator, then removed in small batches by the store's own thread, one batch per loop turn
while more are due, so the store stops growing and the event loop never waits on a large delete.
"""

from __future__ import annotations

import logging

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from smppgw.logs import event
from smppgw.store.base import Store

log = logging.getLogger("smppgw.retention")

INTERVAL = 60.0  # seconds between passes


class Retention:
    def __init__(
        self, store: Store, clock: IReactorTime, keep_final: float, batch: int, interval: float = INTERVAL
    ) -> None:
        self.store, self.clock = store, clock
        self.keep_final, self.batch, self.interval = keep_final, batch, interval
        self.removed = 0  # over the process's life
        self._call: IDelayedCall | None = None
        self._cutoff = 0.0
        self._pass_removed = 0
        self._stopped = False

    def start(self) -> None:
        self._later(self.interval)

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()

    def run(self) -> None:
        """Start a pass now (the timer's job; tests call it directly)."""
        self._call = None
        self._cutoff = self.clock.seconds() - self.keep_final
        self._pass_removed = 0
        self._step()

    def _step(self) -> None:
        self.store.purge(self._cutoff, self.batch, self._done)

    def _done(self, removed: int, more: bool) -> None:
        self.removed += removed
        self._pass_removed += removed
        if self._stopped:
            return
        if more:
            self._later(0)
            return
        if self._pass_removed:
            event(log, "purged", messages=self._pass_removed, older_than=round(self.keep_final))
        self._later(self.interval)

    def _later(self, delay: float) -> None:
        if self._stopped:
            return
        self._call = self.clock.callLater(delay, self.run if delay else self._step)
