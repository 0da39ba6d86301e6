"""HTTP plumbing shared by the adapters: one pooled httpx client per provider, and the error
classification every provider agrees on (timeouts, connection errors, 5xx, 429, 401/403).

Provider-specific codes (SMS Club's 453, smSend's 404 on login…) are handled in the adapter
before or after calling `classify_status`.
"""

from __future__ import annotations

from typing import Any

import httpx

from smppgw.config import ProviderSettings
from smppgw.providers.base import ESME_RSYSERR, ESME_RTHROTTLED, Misconfigured, Retryable, retry_after_seconds
from smppgw.providers.pacing import RequestPacer


class PacedClient(httpx.AsyncClient):
    """An httpx client whose every request waits for its pacer's permit (see pacing.py): the
    adapter's sends, polls, balance and logins all count against the provider's limit."""

    def __init__(self, pacer: RequestPacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacer = pacer

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        async with self.pacer.turn():
            return await super().send(request, **kwargs)


def make_client(
    settings: ProviderSettings,
    *,
    max_connections: int = 16,
    pacer: RequestPacer | None = None,
    **kwargs: Any,
) -> PacedClient:
    """One long-lived client per provider: keep-alive pool, explicit timeouts, every request
    paced by `pacer` (the adapter's `pacer`, which the gateway sets to the provider's
    requests_per_second and shares between processes; unlimited until then)."""
    return PacedClient(
        pacer if pacer is not None else RequestPacer(),
        base_url=settings.url.rstrip("/"),
        timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 5.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        **kwargs,
    )


async def request(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send one request; transport failures become Retryable. The status is not checked here."""
    try:
        return await client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
        # never reached the provider: safe to send again
        raise Retryable(f"{method} {url}: cannot connect ({type(e).__name__})") from None
    except httpx.TimeoutException as e:
        raise Retryable(f"{method} {url}: timeout ({type(e).__name__})", maybe_sent=True) from None
    except httpx.TransportError as e:
        raise Retryable(f"{method} {url}: connection error ({type(e).__name__})", maybe_sent=True) from None


def classify_status(response: httpx.Response) -> None:
    """Raise for the HTTP statuses every provider means the same way; return for the rest.

    401/403 → Misconfigured (our credentials), 429 → Retryable with Retry-After and
    RTHROTTLED, 5xx → Retryable. Other 4xx are left to the adapter, which knows the body.
    """
    code = response.status_code
    what = f"{response.request.method} {response.request.url.path}: HTTP {code}"
    if code in (401, 403):
        raise Misconfigured(f"{what} (credentials refused)", command_status=ESME_RSYSERR, http_status=code)
    if code == 429:
        raise Retryable(
            what,
            command_status=ESME_RTHROTTLED,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
            http_status=code,
        )
    if code >= 500:
        raise Retryable(what, command_status=ESME_RSYSERR, http_status=code, maybe_sent=True)
