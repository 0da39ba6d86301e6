"""The HTTP side (twisted.web): GET /metrics, GET /healthz, POST /webhooks/<provider>.

No business rules: /healthz asks the gateway, /metrics renders the registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from smppgw.metrics import Metrics


class MetricsPage(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return self.metrics.exposition()


class HealthPage(Resource):
    isLeaf = True

    def __init__(self, healthy: Callable[[], bool]) -> None:
        super().__init__()
        self.healthy = healthy

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        if self.healthy():
            return b"ok\n"
        request.setResponseCode(503)
        return b"unavailable\n"


def make_site(
    metrics: Metrics,
    healthy: Callable[[], bool],
    webhooks: Resource | None = None,
    admin: Resource | None = None,
) -> Site:
    root = Resource()
    root.putChild(b"metrics", MetricsPage(metrics))
    root.putChild(b"healthz", HealthPage(healthy))
    if webhooks is not None:
        root.putChild(b"webhooks", webhooks)
    if admin is not None:
        root.putChild(b"admin", admin)
    site = Site(root)
    site.log = lambda request: None  # no access log line per scrape: metrics count what matters
    site.noisy = False
    site.displayTracebacks = False
    return site
