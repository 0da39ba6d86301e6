"""Wires one gateway process together from a Config: store, providers, gateway, SMPP listener,
HTTP site; and takes it apart again on shutdown (unbind sessions, drain, close)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client.core import CounterMetricFamily
from twisted.internet.defer import inlineCallbacks, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater

from smppgw.admin.control import Control
from smppgw.admin.live import LiveView
from smppgw.aio import as_deferred
from smppgw.config import Config, ReloadRefused
from smppgw.gateway.core import Gateway
from smppgw.listen import adopt_handoff, listen
from smppgw.logs import event
from smppgw.metrics import Metrics, StateGauges
from smppgw.providers.build import build_provider
from smppgw.server.factory import SmppFactory
from smppgw.store.base import Store
from smppgw.store.sqlite import SqliteStore
from smppgw.web.admin import AdminApi, admin_site
from smppgw.web.site import make_site
from smppgw.web.webhooks import Webhooks

log = logging.getLogger("smppgw.app")


def make_store(config: Config, reactor: Any) -> Store:
    c = config.store
    if c.type == "redis":
        from smppgw.store.redis.store import RedisStore  # imported only when used

        return RedisStore(c, config.receipts, config.dispatch)
    return SqliteStore(c.path, reactor.callFromThread, durability=c.durability, max_batch=c.max_batch)


def _check_claim_after(config: Config) -> None:
    """A process that loses Redis stops starting provider requests after claim_after / 2; one
    already under way may last its provider's timeout. Longer, and another process that took
    the message over could send it a second time meanwhile: say so at start."""
    if config.store.type != "redis" or not config.providers:
        return
    name, slowest = max(((n, s.timeout) for n, s in config.providers.items()), key=lambda x: x[1])
    if config.store.claim_after / 2 < slowest:
        event(
            log,
            "claim_after_short",
            logging.WARNING,
            claim_after=config.store.claim_after,
            provider=name,
            timeout=slowest,
            advice="claim_after should be at least twice the longest provider timeout",
        )


class _StoreCollector:
    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "smppgw_store_commits", "Store transactions committed", value=self.store.batches
        )
        yield CounterMetricFamily(
            "smppgw_store_writes", "Store writes committed", value=self.store.ops_written
        )
        yield CounterMetricFamily(
            "smppgw_store_purged",
            "Final messages removed after keep_final",
            value=self.store.purged,
        )
        failed = getattr(self.store, "failed_commits", None)  # SQLite: the disk refused a commit
        if failed is not None:
            yield CounterMetricFamily(
                "smppgw_store_commit_failures",
                "Store commits the disk refused (full, read-only, I/O error); state changes are kept"
                " and written again, new messages refused",
                value=failed,
            )
        lease = getattr(self.store, "lease", None)  # a store shared by several processes
        if lease is not None:
            yield CounterMetricFamily(
                "smppgw_store_claimed",
                "Unfinished messages this process took over from processes that died",
                value=lease.claimed,
            )
            yield CounterMetricFamily(
                "smppgw_store_reports_forwarded",
                "Provider reports this process passed on to the process owning their message",
                value=self.store.forwarded_out,
            )


class App:
    def __init__(
        self, config: Config, reactor: Any, worker: int | None = None, handoff_fd: int | None = None
    ) -> None:
        """`worker`: this process's number among the workers of `serve --workers` (None: alone);
        `handoff_fd`: the Unix socket on which that parent hands this worker its SMPP connections
        (None: this process listens on the SMPP ports itself)."""
        self.reactor, self.worker, self.handoff_fd = reactor, worker, handoff_fd
        self.handoff: Any = None
        self.metrics = Metrics()
        self.store = make_store(config, reactor)
        self.metrics.registry.register(_StoreCollector(self.store))
        self.providers = {name: build_provider(s, reactor) for name, s in config.providers.items()}
        _check_claim_after(config)
        self.gateway = Gateway(config, self.store, self.providers, self.metrics, reactor)
        StateGauges(self.store.healthy, self.gateway.dispatcher.circuits, self.metrics.registry)
        self.factory = SmppFactory(self.gateway, config.server, self.metrics, reactor)
        self.webhooks = Webhooks(
            self.providers, config.providers, self.gateway.on_report, self.gateway.on_inbound, self.metrics
        )
        self.live = LiveView(self.factory, self.gateway, self.metrics, reactor)
        self.control = Control(
            config, self.gateway, self.factory, self.webhooks, self.metrics, reactor, worker=worker
        )
        self.admin = AdminApi(lambda: self.config.admin, self.live, self.control, self.store)
        own_admin = config.admin.port is not None
        self.site = make_site(
            self.metrics, self.gateway.healthy, self.webhooks, None if own_admin else self.admin
        )
        self.smpp_port: IListeningPort | None = None
        self.tls_port: IListeningPort | None = None
        self.http_port: IListeningPort | None = None
        self.worker_http_port: IListeningPort | None = None  # `serve --workers`: this worker's own
        self.admin_port: IListeningPort | None = None

    @property
    def config(self) -> Config:
        """The config in force: the one given, or the last one a reload applied."""
        return self.control.config

    def start(self) -> None:
        self.gateway.start()
        c, reactor = self.config, self.reactor
        shared = self.worker is not None  # `serve --workers`: every worker listens on these ports
        tls = None
        if c.server.tls_port is not None:  # SMPP over TLS: its own port, the same sessions and accounts
            from smppgw.server.tls import server_options  # needs pyOpenSSL: imported only when used

            tls = server_options(c.server.tls_cert, c.server.tls_key)
        if self.handoff_fd is not None:  # the parent accepts on the SMPP ports and hands them over
            factories = {"smpp": self.factory} | ({"smpp_tls": self.factory} if tls is not None else {})
            self.handoff = adopt_handoff(reactor, self.handoff_fd, factories, tls)
        else:
            self.smpp_port = listen(reactor, c.server.host, c.server.port, self.factory, shared=shared)
            if tls is not None:
                self.tls_port = listen(
                    reactor, c.server.host, c.server.tls_port, self.factory, shared=shared, tls=tls
                )
        self.http_port = listen(reactor, c.http.host, c.http.port, self.site, shared=shared)
        if self.worker is not None and c.http.worker_ports_from is not None:
            own = c.http.worker_ports_from + self.worker  # this worker's alone: its own /metrics
            self.worker_http_port = listen(reactor, c.http.host, own, self.site)
        if c.admin.port is not None:
            site = admin_site(self.admin)
            self.admin_port = listen(reactor, c.admin.host, c.admin.port, site, shared=shared)
        self.live.start()
        event(
            log,
            "listening",
            smpp=self._smpp_where(self.smpp_port, c.server.port),
            smpp_tls=self._smpp_where(self.tls_port, c.server.tls_port) if tls is not None else "-",
            http=f"{c.http.host}:{self.http_port.getHost().port}",
            worker_http=(
                f"{c.http.host}:{self.worker_http_port.getHost().port}" if self.worker_http_port else "-"
            ),
            admin=self._admin_where(),
            config=c.source,
        )

    def _smpp_where(self, port: IListeningPort | None, configured: int | None) -> str:
        if port is None:
            return f"{self.config.server.host}:{configured} (accepted by the parent)"
        return f"{self.config.server.host}:{port.getHost().port}"  # type: ignore[attr-defined]

    def _admin_where(self) -> str:
        c = self.config
        if not c.admin.token:
            return "off"
        if self.admin_port is not None:
            return f"{c.admin.host}:{self.admin_port.getHost().port}/admin"
        return f"{c.http.host}:{self.http_port.getHost().port}/admin"  # type: ignore[union-attr]

    def reload(self) -> dict[str, Any] | None:
        """SIGHUP: re-read the config file; a bad one is logged (by Control) and changes nothing."""
        try:
            return self.control.reload(announce=False)  # every worker of --workers got the signal
        except ReloadRefused:
            return None

    @inlineCallbacks
    def stop(self, grace: float = 5.0) -> Any:
        """Stop taking connections, unbind every session, give answers `grace` seconds, close."""
        event(log, "stopping", sessions=len(self.factory.sessions))
        self.live.stop()
        ports = (self.smpp_port, self.tls_port, self.http_port, self.worker_http_port, self.admin_port)
        for port in ports:
            if port is not None:
                yield port.stopListening()
        if self.handoff is not None:
            self.handoff.closed = True  # what the parent still hands over is closed at once
        self.factory.unbind_all()
        waited = 0.0
        while self.factory.sessions and waited < grace:
            yield deferLater(self.reactor, 0.1, lambda: None)
            waited += 0.1
        for session in list(self.factory.sessions):
            session.transport.abortConnection()  # type: ignore[union-attr]
        self.gateway.stop()
        for p in self.providers.values():
            yield as_deferred(p.close())
        yield maybeDeferred(self.store.close)  # Redis: pending writes land, the heartbeat ends
        event(log, "stopped")
