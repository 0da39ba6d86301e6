"""MO messages from providers (polled or by webhook) to the account that owns the number.

`[[inbound]]` tables map our numbers (and SIMs, short codes) to accounts. Each message is
committed to the outbox before it is acknowledged, and recognised again (by the provider's id,
or a digest of its fields) when a provider repeats it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from smppgw.config import Account, InboundRoute
from smppgw.gateway.ids import IdIssuer, IdsExhausted
from smppgw.gateway.outbox import Outbox
from smppgw.gateway.receipts import build_mo
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import Inbound
from smppgw.store.base import AddOutbox, Store

log = logging.getLogger("smppgw.inbound")

RECENT_MAX = 10_000  # MO keys remembered for de-duplication


class InboundDesk:
    def __init__(
        self,
        routes: tuple[InboundRoute, ...],
        accounts: dict[str, Account],
        store: Store,
        outbox: Outbox,
        ids: Callable[[], IdIssuer],
        metrics: Metrics,
        clock: IReactorTime,
    ) -> None:
        self.routes, self.accounts, self.store, self.outbox = routes, accounts, store, outbox
        self.ids, self.metrics, self.clock = ids, metrics, clock
        self._recent: OrderedDict[str, None] = OrderedDict()

    def receive(self, provider: str, item: Inbound, done: Callable[[bool], None] | None = None) -> None:
        """`done(True)` once it is committed (or known already), `done(False)` if it could not
        be stored, so a webhook answers 2xx only for what is safe."""
        answer = done or (lambda ok: None)
        account = self.account_for(provider, item.destination)
        if account is None:
            # No [[inbound]] entry names this number: nobody to give it to. Say so loudly; a 2xx
            # stops the provider's retries, which would not change the config.
            event(log, "inbound_unrouted", logging.ERROR, provider=provider, destination=item.destination)
            self.metrics.child(self.metrics.inbound, "-", "unrouted").inc()
            answer(True)
            return
        digest = hashlib.sha1(f"{item.source}|{item.destination}|{item.text}|{item.received_at}".encode())
        key = f"mo/{provider}/{item.provider_id or digest.hexdigest()[:20]}"
        if key in self._recent:
            self.metrics.child(self.metrics.inbound, account, "duplicate").inc()
            answer(True)
            return
        self._recent[key] = None
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)
        ids = self.ids()
        charset = self.accounts[account].dc0_charset if account in self.accounts else "gsm"
        try:
            message_id = ids.issue("decimal", 10)
        except IdsExhausted:
            self._recent.pop(key, None)
            answer(False)  # not stored: the provider's retry brings it again
            return
        record = build_mo(key, account, message_id, item, self.clock.seconds(), charset)

        def committed(error: BaseException | None) -> None:
            if error is not None:
                self._recent.pop(key, None)
                event(log, "inbound_store_failed", logging.ERROR, provider=provider, error=repr(error))
                answer(False)
                return
            self.metrics.child(self.metrics.inbound, account, "accepted").inc()
            answer(True)  # the store hands the record to the outbox (of whichever process)

        self.store.write([AddOutbox(record)], committed, high_id=ids.high)

    def account_for(self, provider: str, number: str) -> str | None:
        number = number.lstrip("+")
        fallback = None
        for route in self.routes:
            if route.providers and provider not in route.providers:
                continue
            if number in route.numbers:
                return route.account
            if "*" in route.numbers and fallback is None:
                fallback = route.account
        return fallback
