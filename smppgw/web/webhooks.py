"""POST /webhooks/<provider-name>[/<secret>]: delivery reports and MO messages pushed by providers.

Authentication is per provider: the configured `webhook_secret` in the last path segment or in
an `X-Webhook-Secret` header, and/or a source allowlist (`webhook_allow`). A provider with
neither configured gets 403: an open endpoint would let anyone set message states.

The adapter turns the request into reports; the gateway does the rest. Status reports are
answered at once (the gateway's one-final-state rule makes the provider's retries harmless);
an MO message is answered after it is committed, so a 2xx always means it is stored. Nothing
here logs the path (it may hold the secret) or the body.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from smppgw.config import ProviderSettings
from smppgw.logs import event
from smppgw.metrics import Metrics
from smppgw.providers.base import Inbound, NotSupported, Provider, StatusReport, WebhookRequest

log = logging.getLogger("smppgw.webhooks")

OnReport = Callable[[str, StatusReport], None]
OnInbound = Callable[[str, Inbound, Callable[[bool], None]], None]


class Webhooks(Resource):
    isLeaf = True

    def __init__(
        self,
        providers: dict[str, Provider],
        settings: dict[str, ProviderSettings],
        on_report: OnReport,
        on_inbound: OnInbound,
        metrics: Metrics,
    ) -> None:
        super().__init__()
        self.providers, self.settings = providers, settings
        self.on_report, self.on_inbound, self.metrics = on_report, on_inbound, metrics
        self.set_settings(settings)

    def set_settings(self, settings: dict[str, ProviderSettings]) -> None:
        """The providers' tables (at start, and after a config reload)."""
        self.settings = settings
        self.networks = {
            name: [ipaddress.ip_network(n, strict=False) for n in s.webhook_allow]
            for name, s in settings.items()
        }

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(405)
        request.setHeader(b"Allow", b"POST")
        return b"POST only\n"

    def render_POST(self, request: Request) -> bytes | int:
        segments = [p.decode("utf-8", "replace") for p in request.postpath if p]
        name = segments[0] if segments else ""
        provider = self.providers.get(name)
        if provider is None:
            return self._answer(request, name or "-", 404, "unknown provider")
        refusal = self._refusal(request, name, segments[1:])
        if refusal:
            return self._answer(request, name, *refusal)
        hook = WebhookRequest(
            method="POST",
            path=f"/webhooks/{name}",
            headers={
                k.decode("latin-1").lower(): v[-1].decode("latin-1")
                for k, v in request.requestHeaders.getAllRawHeaders()
            },
            query={
                k.decode(): [v.decode("utf-8", "replace") for v in vs]
                for k, vs in (request.args or {}).items()
            },
            body=request.content.read() if request.content else b"",
            remote_addr=getattr(request.getClientAddress(), "host", ""),
        )
        try:
            items = provider.parse_webhook(hook)
        except NotSupported:
            return self._answer(request, name, 404, "no webhooks for this provider")
        except ValueError as e:
            event(log, "webhook_unreadable", logging.WARNING, provider=name, reason=str(e)[:200])
            return self._answer(request, name, 400, "unreadable")
        inbound = [i for i in items if isinstance(i, Inbound)]
        for item in items:
            if isinstance(item, StatusReport):
                self.on_report(name, item)
        if not inbound:
            return self._answer(request, name, 200, "ok")
        return self._wait_for_inbound(request, name, inbound)

    def _wait_for_inbound(self, request: Request, name: str, inbound: list[Inbound]) -> int:
        left = [len(inbound)]
        failed = [False]

        def done(ok: bool) -> None:
            failed[0] = failed[0] or not ok
            left[0] -= 1
            if left[0] == 0 and not request.finished and not getattr(request, "_disconnected", False):
                # 503 when an MO could not be stored: the provider's retry brings it again
                status, text = (503, "not stored") if failed[0] else (200, "ok")
                request.write(self._answer(request, name, status, text))
                request.finish()

        for item in inbound:
            self.on_inbound(name, item, done)
        return NOT_DONE_YET

    def _refusal(self, request: Request, name: str, rest: list[str]) -> tuple[int, str] | None:
        s = self.settings[name]
        nets = self.networks[name]
        if not s.webhook_secret and not nets:
            event(log, "webhook_not_configured", logging.WARNING, provider=name)
            return 403, "webhooks are off for this provider (set webhook_secret or webhook_allow)"
        if nets:
            host = getattr(request.getClientAddress(), "host", "")
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                return 403, "source not allowed"
            if not any(addr in net for net in nets):
                return 403, "source not allowed"
        if s.webhook_secret:
            given = rest[0] if rest else (request.getHeader(b"x-webhook-secret") or b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), s.webhook_secret.encode()):
                return 401, "bad or missing secret"
        return None

    def _answer(self, request: Request, name: str, status: int, text: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        result = "ok" if status == 200 else str(status)
        if name in self.providers:
            self.metrics.child(self.metrics.webhooks, name, result).inc()
        return text.encode() + b"\n"
