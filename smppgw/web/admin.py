"""The admin API under /admin (on the [http] listener, or its own with [admin] port): JSON.

GET  /admin/sessions | /admin/accounts | /admin/providers   the live view
GET  /admin/messages/<id>                                  a message and its trail
POST /admin/reload                                         re-read the config file
POST /admin/providers/<name>/pause | /resume

Off (404) while [admin] has no token. Every call needs `Authorization: Bearer <token>`
(401 otherwise, compared in constant time); with an `allow` list, other peers get 403 before
the token is looked at. The token is never logged or echoed; no business rules live here.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from smppgw.config import AdminConfig, ReloadRefused
from smppgw.gateway.trail import timeline
from smppgw.logs import event
from smppgw.providers.base import STAT_WORDS
from smppgw.store.base import RECEIPT_NAMES, MessageRecord, Store, TrailEvent

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

log = logging.getLogger("smppgw.admin")

_TIMES = ("submitted_at", "stored_at", "sent_at", "done_at", "receipt_at", "schedule_at", "valid_until")


class LiveReadings(Protocol):
    """The live view the API reads (admin.live.LiveView): lists of JSON-ready dicts."""

    clock: IReactorTime

    def sessions(self) -> list[dict[str, Any]]: ...

    def accounts(self) -> list[dict[str, Any]]: ...

    def providers(self) -> list[dict[str, Any]]: ...


class AdminActions(Protocol):
    """What the API may change (admin.control.Control); each answers a JSON-ready dict."""

    def reload(self) -> dict[str, Any]:
        """ReloadRefused when the file does not pass check-config."""
        ...

    def pause(self, name: str) -> dict[str, Any]:
        """KeyError for a provider that is not in the config."""
        ...

    def resume(self, name: str) -> dict[str, Any]: ...


def iso(ts: float | None) -> str | None:
    """UTC ISO 8601 with milliseconds, as every time in the API's answers."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=16)
def _networks(allow: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in allow)


class AdminApi(Resource):
    isLeaf = True

    def __init__(
        self, settings: Callable[[], AdminConfig], live: LiveReadings, control: AdminActions, store: Store
    ) -> None:
        super().__init__()
        self.settings, self.live, self.control, self.store = settings, live, control, store

    def render(self, request: Request) -> bytes | int:
        cfg = self.settings()  # read per call: a reload may change the token or the allow list
        if not cfg.token:
            return _json(request, 404, {"error": "not found"})
        refusal = _refusal(request, cfg)
        if refusal is not None:
            event(log, "admin_refused", logging.WARNING, peer=_peer(request), status=refusal[0])
            return _json(request, *refusal)
        path = [p.decode("utf-8", "replace") for p in request.postpath if p]
        method = request.method.decode("ascii", "replace")
        return self._route(request, method, path)

    def _route(self, request: Request, method: str, path: list[str]) -> bytes | int:
        gets = {
            "sessions": self.live.sessions,
            "accounts": self.live.accounts,
            "providers": self.live.providers,
        }
        if len(path) == 1 and path[0] in gets:
            if method != "GET":
                return _not_allowed(request, "GET")
            return _json(request, 200, {"at": iso(self.live.clock.seconds()), path[0]: gets[path[0]]()})
        if len(path) == 2 and path[0] == "messages":
            if method != "GET":
                return _not_allowed(request, "GET")
            return self._message(request, path[1])
        if path == ["reload"]:
            if method != "POST":
                return _not_allowed(request, "POST")
            try:
                return _json(request, 200, self.control.reload())
            except ReloadRefused as e:
                return _json(request, 400, {"applied": False, "error": str(e)})
        if len(path) == 3 and path[0] == "providers" and path[2] in ("pause", "resume"):
            if method != "POST":
                return _not_allowed(request, "POST")
            action = self.control.pause if path[2] == "pause" else self.control.resume
            try:
                return _json(request, 200, action(path[1]))
            except KeyError:
                return _json(request, 404, {"error": f"no provider {path[1]!r} in the config"})
        return _json(request, 404, {"error": "not found"})

    def _message(self, request: Request, message_id: str) -> int:
        def done(record: MessageRecord | None, trail: list[TrailEvent]) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            if record is None:
                body = _json(request, 404, {"error": "no such message", "id": message_id})
            else:
                steps = timeline(record, trail)  # the row's milestones with the stored events
                body = _json(request, 200, {"message": message_json(record), "trail": trail_json(steps)})
            request.write(body)
            request.finish()

        self.store.get_trail(message_id, done)
        return NOT_DONE_YET


def message_json(record: MessageRecord) -> dict[str, Any]:
    out: dict[str, Any] = dataclasses.asdict(record)
    out["state_name"] = STAT_WORDS.get(record.state, "QUEUED")
    out["receipt_name"] = RECEIPT_NAMES.get(record.receipt, str(record.receipt))
    for key in _TIMES:
        out[f"{key}_utc"] = iso(out[key])
    return out


def trail_json(trail: list[TrailEvent]) -> list[dict[str, Any]]:
    return [{"at": e.at, "at_utc": iso(e.at), "event": e.event, "detail": e.detail} for e in trail]


def admin_site(api: AdminApi) -> Site:
    """A site of its own for [admin] port: the same paths under /admin."""
    root = Resource()
    root.putChild(b"admin", api)
    site = Site(root)
    site.log = lambda request: None
    site.noisy = False
    site.displayTracebacks = False
    return site


def _peer(request: Request) -> str:
    return str(getattr(request.getClientAddress(), "host", ""))


def _refusal(request: Request, cfg: AdminConfig) -> tuple[int, dict[str, Any]] | None:
    if cfg.allow:
        try:
            addr = ipaddress.ip_address(_peer(request))
        except ValueError:
            return 403, {"error": "peer not allowed"}
        if not any(addr in net for net in _networks(cfg.allow)):
            return 403, {"error": "peer not allowed"}
    scheme, _, given = (request.getHeader(b"authorization") or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), cfg.token.encode()):
        request.setHeader(b"WWW-Authenticate", b'Bearer realm="smppgw-admin"')
        return 401, {"error": "missing or wrong bearer token"}
    return None


def _not_allowed(request: Request, allow: str) -> bytes:
    request.setHeader(b"Allow", allow.encode())
    return _json(request, 405, {"error": f"{allow} only"})


def _json(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(body, ensure_ascii=False, default=str).encode() + b"\n"
