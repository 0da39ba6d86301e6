"""The SMPP listening factory: builds one SmppSession per connection and knows them all, so a
shutdown can unbind every session before the process exits."""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory

from smppgw.config import ServerConfig
from smppgw.gateway.core import Gateway
from smppgw.metrics import Metrics
from smppgw.server.protocol import SmppSession
from smppgw.server.throttle import Throttles


class SmppFactory(ServerFactory):
    def __init__(self, gateway: Gateway, config: ServerConfig, metrics: Metrics, clock: IReactorTime) -> None:
        self.gateway, self.config, self.metrics, self.clock = gateway, config, metrics, clock
        self.sessions: set[SmppSession] = set()
        # per-account token buckets, shared by the account's sessions (of every process, when the
        # store is shared)
        self.throttles = Throttles(gateway.store.bucket)

    def buildProtocol(self, addr: IAddress) -> SmppSession:
        return SmppSession(
            self.gateway,
            self.config,
            self.metrics,
            self.clock,
            sessions=self.sessions,
            throttles=self.throttles,
        )

    def unbind_all(self) -> None:
        for session in list(self.sessions):
            session.unbind()
