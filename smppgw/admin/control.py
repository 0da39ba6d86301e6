"""Live changes: a config reload (POST /admin/reload, SIGHUP) and provider pause/resume.

A reload reads the file `serve` was given, checks it exactly as `smppgw check-config` does
(parse, validate, build every provider adapter so it checks its own options) and refuses a
bad file whole: the running config stays. A good file is applied in place, without dropping
a bound session:

- accounts: new ones bind at once; a removed account's sessions are unbound; a changed account
  reaches its bound sessions (throughput, long_mo…) while a changed password counts from the
  next bind;
- routes, inbound routes, [receipts], [dispatch], [log], the admin token and allow list;
- providers: a changed table gets a new adapter for new requests, the old one is closed once its
  requests in flight had time to finish; a new table gets a lane; a removed provider is retired:
  it gets no new messages (its queued ones fail over along their routes, or wait) but keeps
  answering for the messages it already took (polls, webhooks) until a restart.

What cannot change in a running process (listener addresses, the store, TLS) is reported as
"needs restart" and otherwise ignored. Answers name keys, never values: secrets stay out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smppgw import logs
from smppgw.aio import as_deferred
from smppgw.config import Config, ConfigError, ReloadRefused
from smppgw.gateway.chores import Chores
from smppgw.gateway.prices import PriceBook
from smppgw.gateway.router import Router
from smppgw.logs import event
from smppgw.providers.base import Provider
from smppgw.providers.build import load_checked

if TYPE_CHECKING:
    from smppgw.gateway.core import Gateway
    from smppgw.metrics import Metrics
    from smppgw.server.factory import SmppFactory
    from smppgw.web.webhooks import Webhooks

log = logging.getLogger("smppgw.admin")

_RESTART = {
    "server": ("host", "port", "tls_port", "tls_cert", "tls_key"),
    "http": ("host", "port", "worker_ports_from"),
    "store": (
        "type",
        "path",
        "durability",
        "max_batch",
        "url",
        "key_prefix",
        "claim_after",
        "node",
        "wait_replicas",
        "wait_timeout",
    ),
    "admin": ("host", "port"),
}
CLOSE_CHECK = 0.5  # seconds between checks whether a replaced adapter may be closed


class Control:
    def __init__(
        self,
        config: Config,
        gateway: Gateway,
        factory: SmppFactory,
        webhooks: Webhooks,
        metrics: Metrics,
        clock: Any,
        *,
        worker: int | None = None,
    ) -> None:
        """`config`: the config in force, which `apply` replaces; `worker`: this process's number
        among the workers of `serve --workers` (None: alone)."""
        self.config, self.gateway, self.factory, self.webhooks = config, gateway, factory, webhooks
        self.metrics, self.clock, self.worker = metrics, clock, worker
        # `serve --workers`: called after a reload asked for over the admin API (not SIGHUP), so
        # that the parent reloads the other workers too
        self.announce: Callable[[], None] | None = None
        self.paused: set[str] = set()  # paused by an operator (not retired providers)
        self.retired: dict[str, Any] = {}  # removed providers still answering: name -> settings
        for name in gateway.providers:
            metrics.child(metrics.provider_paused, name).set(0)

    # -- pause / resume -----------------------------------------------------------------------

    def pause(self, name: str) -> dict[str, Any]:
        """KeyError for a provider that is not in the config."""
        if name not in self.config.providers:
            raise KeyError(name)
        gw = self.gateway
        moved, waiting = gw.dispatcher.pause(name)
        self.paused.add(name)
        self.metrics.child(self.metrics.provider_paused, name).set(1)
        routes = []
        for i, route in enumerate(self.config.routes):
            if name in route.providers:
                others = [p for p in route.providers if p != name]
                then = f"fail over to {', '.join(others)}" if others else "wait for resume"
                routes.append({"route": i, "providers": list(route.providers), "messages": then})
        event(log, "provider_paused", provider=name, moved=moved, waiting=waiting)
        return {"provider": name, "paused": True, "moved": moved, "waiting": waiting, "routes": routes}

    def resume(self, name: str) -> dict[str, Any]:
        if name not in self.config.providers:
            raise KeyError(name)
        released = self.gateway.dispatcher.resume(name)
        self.paused.discard(name)
        self.metrics.child(self.metrics.provider_paused, name).set(0)
        event(log, "provider_resumed", provider=name, released=released)
        return {"provider": name, "paused": False, "released": released}

    # -- reload -------------------------------------------------------------------------------

    def reload(self, announce: bool = True) -> dict[str, Any]:
        """Re-read the config file; ReloadRefused (and the old config stays) when it is bad.
        `announce`: tell the other workers of `serve --workers` (False when they got SIGHUP too)."""
        path = self.config.source
        try:
            new, built = load_checked(path, self.clock)
        except ConfigError as e:
            event(log, "reload_refused", logging.ERROR, config=path, error=str(e))
            raise ReloadRefused(f"config error: {e}") from None
        if self.worker is not None:
            from smppgw.workers import worker_config

            new = worker_config(new, self.worker)
        answer = self.apply(new, built)
        event(
            log,
            "config_reloaded",
            config=path,
            changed=",".join(answer["changed"]) or "-",
            added=",".join(answer["added"]) or "-",
            removed=",".join(answer["removed"]) or "-",
            needs_restart=",".join(answer["needs_restart"]) or "-",
        )
        if announce and self.announce is not None:
            self.announce()
        return answer

    def apply(self, new: Config, built: dict[str, Provider]) -> dict[str, Any]:
        old = self.config
        out: dict[str, Any] = {
            "applied": True,
            "config": old.source,
            "changed": [],
            "added": [],
            "removed": [],
            "needs_restart": [],
        }
        effective = self._keep_restart_only(old, new, out["needs_restart"])
        for section in ("server", "receipts", "dispatch", "log", "admin"):
            for key in _changed_fields(getattr(old, section), getattr(effective, section)):
                out["changed"].append(f"{section}.{key}")
        self.config = effective
        gw = self.gateway
        gw.config = effective
        self.factory.config = effective.server  # timers, window: for new sessions
        gw.outbox.config = effective.receipts
        gw.dispatcher.config = effective.dispatch
        for lane in gw.dispatcher.lanes.values():
            lane.breaker.threshold = effective.dispatch.breaker_threshold
            lane.breaker.cooldown = effective.dispatch.breaker_cooldown
        gw.tracker.horizon = effective.dispatch.status_horizon
        if old.log != effective.log:
            logs.setup(effective.log.level, effective.log.format)
        out["sessions_unbound"] = self._accounts(old, effective, out)
        gone = self._providers(old, effective, built, out)
        if old.routes != effective.routes:
            out["changed"].append("routes")
        if old.inbound != effective.inbound:
            out["changed"].append("inbound")
        gw.router = Router(effective.routes, gw.prices)
        gw.inbound.routes = effective.inbound
        if gone:  # after the new routes: queued messages fail over along them
            out["retired"] = {}
            for name in gone:
                moved, waiting = gw.dispatcher.pause(name)
                out["retired"][name] = {"moved": moved, "waiting": waiting}
        return out

    def _keep_restart_only(self, old: Config, new: Config, restart: list[str]) -> Config:
        """The new config with the values a running process cannot change taken from the old."""
        parts = {}
        for section, keys in _RESTART.items():
            was, now = getattr(old, section), getattr(new, section)
            kept = {k: getattr(was, k) for k in keys if getattr(was, k) != getattr(now, k)}
            restart.extend(f"{section}.{k}" for k in kept)
            parts[section] = dataclasses.replace(now, **kept) if kept else now
        return dataclasses.replace(new, **parts)

    def _accounts(self, old: Config, new: Config, out: dict[str, Any]) -> int:
        gw = self.gateway
        gone = [a for a in old.accounts if a not in new.accounts]
        out["removed"].extend(f"accounts.{a}" for a in gone)
        out["added"].extend(f"accounts.{a}" for a in new.accounts if a not in old.accounts)
        changed = set()
        for name, account in new.accounts.items():
            if name in old.accounts:
                keys = _changed_fields(old.accounts[name], account)
                out["changed"].extend(f"accounts.{name}.{k}" for k in keys)
                if keys:
                    changed.add(name)
        gw.accounts = new.accounts
        gw.inbound.accounts = new.accounts
        unbound = 0
        for session in list(self.factory.sessions):
            if session.bind_name is None:
                continue
            if session.account in gone:
                session.unbind()
                unbound += 1
            elif session.account in changed:
                session.account_changed(new.accounts[session.account])
        return unbound

    def _providers(
        self, old: Config, new: Config, built: dict[str, Provider], out: dict[str, Any]
    ) -> list[str]:
        """Swap adapters in; returns the providers that left the config (to retire)."""
        gw = self.gateway
        touched = False
        for name, adapter in built.items():
            before = old.providers.get(name)
            if before is not None and before == new.providers[name] and name not in self.retired:
                as_deferred(adapter.close())  # built only to check the file
                continue
            touched = True
            if before is None and name not in self.retired:
                out["added"].append(f"providers.{name}")
            else:
                keys = _changed_fields(before or self.retired[name], new.providers[name])
                out["changed"].extend(f"providers.{name}.{k}" for k in keys or ["(restored)"])
            if hasattr(adapter, "report_sink"):
                adapter.report_sink = lambda report, n=name: gw.on_report(n, report)  # type: ignore[attr-defined]
            previous = gw.providers.get(name)
            gw.providers[name] = adapter  # the dict the tracker, chores and webhooks read
            gw.dispatcher.set_provider(name, adapter)
            if name in self.retired:
                del self.retired[name]
                if name not in self.paused:
                    gw.dispatcher.resume(name)
            else:
                self.metrics.child(self.metrics.provider_paused, name).set(1 if name in self.paused else 0)
            if previous is not None:
                self._close_later(name, previous, (before or new.providers[name]).timeout)
        gone = [name for name in old.providers if name not in new.providers]
        for name in gone:
            touched = True
            out["removed"].append(f"providers.{name}")
            self.retired[name] = old.providers[name]
            self.paused.discard(name)
            self.metrics.child(self.metrics.provider_paused, name).set(0)
        if not touched:
            return gone
        settings = {**self.retired, **new.providers}  # retired ones still answer webhooks and polls
        gw.tracker.settings = settings
        self.webhooks.set_settings(settings)
        prices = PriceBook(new.providers)
        prices.published = gw.prices.published
        gw.prices = prices
        old_chores = gw.chores
        old_chores.stop()
        chores = Chores(gw.providers, new.providers, gw.clock, self.metrics, gw.on_inbound, prices)
        chores.senders = {k: v for k, v in old_chores.senders.items() if k in new.providers}
        chores.balances = {k: v for k, v in old_chores.balances.items() if k in new.providers}
        gw.chores = chores
        chores.start()
        return gone

    def _close_later(self, name: str, adapter: Provider, timeout: float) -> None:
        """Close a replaced adapter once its lane has nothing in flight, or after the longest a
        request may take (two timeouts: an adapter may log in again once); a simulator keeps
        pushing the reports it owes for `delay` seconds."""
        clock = self.clock
        t0 = clock.seconds()
        grace = 2 * timeout + 1.0
        owed = float(getattr(adapter, "delay", 0.0))

        def check() -> None:
            lane = self.gateway.dispatcher.lanes.get(name)
            elapsed = clock.seconds() - t0
            idle = lane is None or lane.in_flight == 0
            if (idle and elapsed >= owed) or elapsed >= max(grace, owed + 1.0):
                as_deferred(adapter.close())
            else:
                clock.callLater(CLOSE_CHECK, check)

        clock.callLater(0, check)


def _changed_fields(old: Any, new: Any) -> list[str]:
    """Names of the fields that differ; a provider's `options` by option key. Never values."""
    out = []
    for f in dataclasses.fields(old):
        was, now = getattr(old, f.name), getattr(new, f.name)
        if was == now:
            continue
        if f.name == "options" and isinstance(was, dict) and isinstance(now, dict):
            out.extend(sorted(k for k in was.keys() | now.keys() if was.get(k, ...) != now.get(k, ...)))
        else:
            out.append(f.name)
    return out
