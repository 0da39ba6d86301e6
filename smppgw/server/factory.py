"""The SMPP listening factory: builds one SmppSession per connection and knows them all, so a
shutdown can unbind every session before the process exits.

It also keeps floods out: a connection beyond `max_connections` open sessions, `max_unbound`
sessions that have not bound, or `max_unbound_per_ip` of those from one source address is
closed at once (no session is built for it), counted in `smppgw_connections_refused_total` and
logged at most once a second per reason. With the bind deadline (`session_init_timeout`) closing
every connection that does not bind in time, the file descriptors a flood can hold stay bounded.
"""

from __future__ import annotations

import logging

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory

from smppgw.config import ServerConfig
from smppgw.gateway.core import Gateway
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.server.guard import BindGuard
from smppgw.server.protocol import SmppSession
from smppgw.server.sessions import Sessions
from smppgw.server.throttle import Throttles

log = logging.getLogger("smppgw.server")
REFUSAL_LOG_EVERY = 1.0  # seconds: a flood logs one line per reason this often, with its count


class SmppFactory(ServerFactory):
    def __init__(self, gateway: Gateway, config: ServerConfig, metrics: Metrics, clock: IReactorTime) -> None:
        self.gateway, self.metrics, self.clock = gateway, metrics, clock
        self.sessions = Sessions()
        # per-account token buckets, shared by the account's sessions (of every process, when the
        # store is shared)
        self.throttles = Throttles(gateway.store.bucket)
        self.guard = BindGuard()
        self._refused: dict[str, tuple[float, int]] = {}  # reason -> (last logged, since then)
        self.config = config

    @property
    def config(self) -> ServerConfig:
        return self._config

    @config.setter
    def config(self, config: ServerConfig) -> None:
        """New sessions take the timers and window; the bind guard its delays at once."""
        self._config = config
        g = self.guard
        g.delay, g.delay_max = config.bind_fail_delay, config.bind_fail_delay_max
        g.lockout_after, g.lockout_for = config.bind_lockout_after, config.bind_lockout_seconds

    def buildProtocol(self, addr: IAddress) -> SmppSession | None:
        address = str(getattr(addr, "host", "?"))
        reason = self._over_cap(address)
        if reason is not None:
            self._refuse(reason, address)
            return None  # Twisted closes the connection
        return SmppSession(
            self.gateway,
            self.config,
            self.metrics,
            self.clock,
            sessions=self.sessions,
            throttles=self.throttles,
            guard=self.guard,
        )

    def _over_cap(self, address: str) -> str | None:
        c, s = self._config, self.sessions
        if c.max_connections and len(s) >= c.max_connections:
            return "max_connections"
        if c.max_unbound and s.unbound >= c.max_unbound:
            return "max_unbound"
        if c.max_unbound_per_ip and s.unbound_by_address[address] >= c.max_unbound_per_ip:
            return "max_unbound_per_ip"
        return None

    def _refuse(self, reason: str, address: str) -> None:
        self.metrics.child(self.metrics.connections_refused, reason).inc()
        now = self.clock.seconds()
        last, count = self._refused.get(reason, (-REFUSAL_LOG_EVERY, 0))
        if now - last >= REFUSAL_LOG_EVERY:
            event(
                log, "connection_refused", logging.WARNING, reason=reason, peer=address, since_last=count + 1
            )
            self._refused[reason] = (now, 0)
        else:
            self._refused[reason] = (last, count + 1)

    def unbind_all(self) -> None:
        for session in list(self.sessions):
            session.unbind()
