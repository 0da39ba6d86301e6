"""What every fake provider shares: a real HTTP server on loopback (stdlib, its own thread),
a log of the requests it received, outcomes chosen by the recipient number's suffix,
status progression over a clock tests can move, injected failures, and webhook emission
with retries.

Each fake (one module per provider) subclasses `FakeProvider`, lists its routes and writes
its answers from the provider's spec in ../shared/providers/. The fakes run in their own
thread so that a test on the reactor thread can talk to them, and they to the gateway.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Outcome(Enum):
    """What happens to a message, chosen by the last four digits of its number (fakes.md)."""

    DELIVERED = "delivered"
    INVALID_NUMBER = "invalid"  # ...0001: refused at send
    UNDELIVERED = "undelivered"  # ...0002: final UNDELIV after the delay
    NEVER_FINAL = "never_final"  # ...0003: stays in the intermediate status
    THROTTLED = "throttled"  # ...0004: the send request gets 429
    SERVER_ERROR = "server_error"  # ...0005: the send request gets 5xx
    EXPIRED = "expired"  # ...0006: final EXPIRED after the delay
    REJECTED = "rejected"  # ...0007: final REJECTD after the delay


_SUFFIXES = {
    "0001": Outcome.INVALID_NUMBER,
    "0002": Outcome.UNDELIVERED,
    "0003": Outcome.NEVER_FINAL,
    "0004": Outcome.THROTTLED,
    "0005": Outcome.SERVER_ERROR,
    "0006": Outcome.EXPIRED,
    "0007": Outcome.REJECTED,
}


def outcome_for(number: str) -> Outcome:
    digits = re.sub(r"\D", "", number)
    if not digits or len(digits) < 7:
        return Outcome.INVALID_NUMBER
    return _SUFFIXES.get(digits[-4:], Outcome.DELIVERED)


class FakeClock:
    """Real time by default; `manual=True` freezes it until `advance` is called."""

    def __init__(self, manual: bool = False, start: float = 1_800_000_000.0) -> None:
        self.manual = manual
        self._now = start
        self._offset = 0.0

    def now(self) -> float:
        return self._now if self.manual else time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if self.manual:
            self._now += seconds
        else:
            self._offset += seconds


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived (a limit counts requests as they arrive)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body, ensure_ascii=False).encode(), self.content_type or "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return self.body, self.content_type or "application/octet-stream"


@dataclass
class FakeMessage:
    """A message the fake accepted. `status_at` tells its state at a clock time."""

    provider_id: str
    destination: str
    text: str
    sender: str
    created_at: float
    outcome: Outcome
    extra: dict[str, Any] = field(default_factory=dict)

    def is_final_at(self, now: float, delay: float) -> bool:
        return self.outcome is not Outcome.NEVER_FINAL and now - self.created_at >= delay


@dataclass
class _Webhook:
    url: str
    body: bytes
    content_type: str
    headers: dict[str, str]
    due: float
    attempt: int = 0


Handler = Callable[[Recorded, "re.Match[str]"], Reply]


class FakeProvider:
    """Base of every fake. Subclasses fill `routes` with (method, path regex, handler name)."""

    type = "fake"
    routes: list[tuple[str, str, str]] = []
    # Seconds between emission attempts of a webhook that got no 2xx (FloppySend: 1/10/300/900 s).
    webhook_retry_delays: tuple[float, ...] = (1.0, 10.0, 300.0, 900.0)

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: FakeClock | None = None,
        delay: float = 1.0,
        webhook_url: str | None = None,
        rate_limit: float | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.delay = delay  # seconds from acceptance to the final status
        self.webhook_url = webhook_url
        self.rate_limit = rate_limit  # requests per second before 429, None for no limit
        self.no_balance = False
        self.latency = 0.0  # seconds added to every answer (benchmarks: a provider far away)
        self.requests: list[Recorded] = []
        self.messages: dict[str, FakeMessage] = {}
        self.webhooks_sent: list[tuple[str, bytes, int]] = []  # (url, body, HTTP status or 0)
        self._failures: list[Reply] = []
        self._lock = threading.RLock()
        self._hits: list[float] = []
        self.throttled = 0  # requests answered 429 for the rate limit
        self._ids = 100000
        self._webhooks: list[_Webhook] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._compiled = [(m, re.compile(p + r"\Z"), getattr(self, h)) for m, p, h in self.routes]
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    # -- life cycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProvider:
        serve = lambda: self._server.serve_forever(poll_interval=0.05)  # noqa: E731 - stops fast
        for target in (serve, self._webhook_loop):
            t = threading.Thread(target=target, name=f"fake-{self.type}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping = True
        with self._wake:
            self._wake.notify_all()
        if self._threads:  # shutdown() would wait for ever on a server that never started
            self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------

    def fail_next(
        self, status: int, count: int = 1, body: Any = b"", headers: dict[str, str] | None = None
    ) -> None:
        """The next `count` requests (any route) get this answer instead of the real one."""
        with self._lock:
            self._failures.extend(Reply(status, body, dict(headers or {})) for _ in range(count))

    def advance(self, seconds: float) -> None:
        """Move the fake's clock; statuses and due webhooks follow."""
        self.clock.advance(seconds)
        with self._wake:
            self._wake.notify_all()

    def requests_to(self, method: str, path_regex: str) -> list[Recorded]:
        rx = re.compile(path_regex + r"\Z")
        with self._lock:
            return [r for r in self.requests if r.method == method and rx.match(r.path)]

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """Block (in a test thread) until at least `count` requests were received."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.01)
        raise TimeoutError(f"{self.type} fake got {len(self.requests)} requests, expected {count}")

    # -- helpers for subclasses -------------------------------------------------------------

    def new_id(self) -> str:
        with self._lock:
            self._ids += 1
            return str(self._ids)

    def accept(
        self, destination: str, text: str, sender: str, provider_id: str | None = None, **extra: Any
    ) -> FakeMessage:
        msg = FakeMessage(
            provider_id or self.new_id(),
            destination,
            text,
            sender,
            self.clock.now(),
            outcome_for(destination),
            extra,
        )
        with self._lock:
            self.messages[msg.provider_id] = msg
        return msg

    def is_final(self, msg: FakeMessage) -> bool:
        return msg.is_final_at(self.clock.now(), self.delay)

    def emit_webhook(
        self,
        url: str,
        body: bytes | str | dict,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Queue a POST to `url`, retried on non-2xx per webhook_retry_delays."""
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False).encode()
        elif isinstance(body, str):
            body = body.encode()
        with self._wake:
            self._webhooks.append(
                _Webhook(url, body, content_type, dict(headers or {}), self.clock.now() + delay)
            )
            self._wake.notify_all()

    def on_tick(self, now: float) -> None:
        """Called from the webhook thread after every clock move; subclasses queue webhooks here."""

    # -- internals --------------------------------------------------------------------------

    def _webhook_loop(self) -> None:
        while not self._stopping:
            with self._wake:
                self._wake.wait(timeout=0.05)
            if self._stopping:
                return
            now = self.clock.now()
            try:
                self.on_tick(now)
            except Exception:  # a fake's bug must not stop its thread
                import traceback

                traceback.print_exc()
            with self._wake:
                due = [w for w in self._webhooks if w.due <= now]
                self._webhooks = [w for w in self._webhooks if w.due > now]
            for w in due:
                status = self._post(w)
                self.webhooks_sent.append((w.url, w.body, status))
                if not 200 <= status < 300 and w.attempt < len(self.webhook_retry_delays):
                    # from this round's time: a clock moved during the POST must not push it later
                    w.due = now + self.webhook_retry_delays[w.attempt]
                    w.attempt += 1
                    with self._wake:
                        self._webhooks.append(w)

    @staticmethod
    def _post(w: _Webhook) -> int:
        req = urllib.request.Request(
            w.url, data=w.body, method="POST", headers={"Content-Type": w.content_type, **w.headers}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def most_in_any_second(self) -> int:
        """The most requests that arrived within any one second (a sliding window), 429s and
        all: what a provider that counts every call saw of us at worst."""
        with self._lock:
            times = sorted(r.at for r in self.requests)
        most, first = 0, 0
        for i, t in enumerate(times):
            while t - times[first] >= 1.0:
                first += 1
            most = max(most, i - first + 1)
        return most

    def _throttled(self) -> bool:
        if not self.rate_limit:
            return False
        now = time.monotonic()
        with self._lock:
            self._hits = [t for t in self._hits if now - t < 1.0]
            if len(self._hits) >= self.rate_limit:
                return True
            self._hits.append(now)
        return False

    def _dispatch(self, rec: Recorded) -> Reply:
        if self.latency:
            time.sleep(self.latency)  # this request's own server thread: others go on meanwhile
        with self._lock:
            self.requests.append(rec)
            if self._failures:
                return self._failures.pop(0)
        if self._throttled():
            with self._lock:
                self.throttled += 1
            return Reply(429, {"error": {"code": 429, "message": "Too many requests"}}, {"Retry-After": "1"})
        for method, rx, handler in self._compiled:
            m = rx.match(rec.path)
            if m and method in (rec.method, "*"):
                return handler(rec, m)
        return Reply(404, {"error": "not found"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = urlsplit(self.path)
                rec = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                try:
                    reply = fake._dispatch(rec)
                except Exception as e:  # a fake's bug shows as a 500 with the reason
                    reply = Reply(500, {"fake_error": repr(e)})
                data, ctype = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler
