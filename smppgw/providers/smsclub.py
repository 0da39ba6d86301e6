"""SMS Club adapter (smsclub.mobi, seed 002): JSON over POST with a Bearer token.

Spec: shared/providers/smsclub.md. Calls used: /sms/send (one text to ≤100 phones),
/sms/status (≤100 ids), /sms/balance, /sms/originator. SMS Club has no webhooks, no MO,
no cancel, no scheduling, no TTL, no flash and no unicode flag: text goes as UTF-8 and
`schedule_at`, `valid_until` and `flash` are ignored (capabilities say so to the gateway).

Inferred choices ([INF] in the spec); the ones with a name are `[providers.<name>]` options:

* `phone_pattern` (default `[0-9]{7,15}`): a number that does not match is refused locally
  with 0x0B, err 001; an empty text with 0x01, err 004. No request is made for either.
* `check_senders` (default false): refuse a source missing from /sms/originator locally with
  0x0A, err 003; the list is cached `senders_cache_seconds` (default 600).
* `invalid_number_texts`: case-insensitive substrings of an `add_info` text that mean "invalid
  number" (0x0B, err 001). Any other `add_info` refusal (blacklist…) is 0x45, err 002.
* `duplicate_window` (default 120 s, the documented 2 minutes): how long the adapter remembers
  that a send request may have reached SMS Club though no answer came back (timeout, connection
  lost after connecting, 5xx, unreadable 200, a phone missing from the answer).
* 453 ("duplicate within 2 minutes"): when every message of the refused request comes from one
  such unanswered request, this is our own retry and the first attempt went through. A message
  the gateway resumes after a restart, or takes over from a gateway process that died
  (`OutboundSms.maybe_sent`), counts as coming from one such request of that earlier process. Each
  message is accepted (ok, no provider id, provider_status "453") with state
  `duplicate_retry_state` (default "UNKNOWN", final: without the provider id nothing can ever be
  polled; "ENROUTE" leaves the final UNKNOWN to the gateway's status horizon). A 453 for one
  fresh message is the ESME's own duplicate: Permanent 0x45, err 453. A 453 for several
  messages is resent one phone per request, because the code does not say which phone it meant.
* The same phone twice for one (source, text) goes in separate requests, so `info` (id → phone)
  maps back without guessing; the second copy then meets the 453 rule above.
* `unknown_status_final` (default false): a status word missing from STATUS_TABLE is reported
  ENROUTE (non-final) so that the gateway's horizon ends it with UNKNOWN; true reports UNKNOWN
  (final) at once.
* `requests_per_second` (default 9, the documented limit; 0 = off): every request (sends, polls,
  balance, originator lists) in any sliding second, for all processes together (pacing.py).
* HTTP 400 → Permanent 0x45, err 400; any other unexpected status → Permanent 0x08.
* `info` / `add_info` sent as an empty JSON array (PHP's empty array) read as empty.
* Within one batch, a request-level failure (429, 5xx, timeout, 401) stops the batch: it is
  raised when nothing was sent yet, else given to the messages not sent.
* `integration_id` (optional, documented): added to every send when configured.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from smppgw.config import ProviderSettings
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    EXPIRED,
    REJECTED,
    UNDELIVERABLE,
    UNKNOWN,
    Balance,
    Capabilities,
    Inbound,
    Misconfigured,
    NotSupported,
    OutboundSms,
    Permanent,
    ProviderLimits,
    Retryable,
    SendResult,
    StatusReport,
    WebhookRequest,
)
from smppgw.providers.http import classify_status, make_client
from smppgw.providers.pacing import RequestPacer

EARLIER_PROCESS = 0  # the "attempt" of a request an earlier (restarted or dead) process may have made
log = logging.getLogger(__name__)

DEFAULT_URL = "https://im.smsclub.mobi"
MAX_PHONES = 100  # per /sms/send and per /sms/status [S002]

# Every word /sms/status may answer [S002] → SMPP message_state.
STATUS_TABLE: dict[str, int] = {
    "ENROUTE": ENROUTE,
    "DELIVRD": DELIVERED,
    "EXPIRED": EXPIRED,
    "UNDELIV": UNDELIVERABLE,
    "REJECTD": REJECTED,
}

# Receipt err: values for refusals that carry no provider code [INF].
ERR_INVALID_NUMBER, ERR_REFUSED, ERR_SENDER, ERR_EMPTY_TEXT, ERR_DUPLICATE = "001", "002", "003", "004", "453"

DEFAULT_INVALID_NUMBER_TEXTS = (
    "invalid",
    "incorrect",
    "wrong",
    "неверн",
    "некорр",
    "невірн",
    "некорект",
    "не существует",
    "не існує",
)


Sleep = Callable[[float], Awaitable[Any]]


class _MaybeSent(Retryable):
    """The request may have reached SMS Club: a retry can meet 453."""


@dataclass(frozen=True, slots=True)
class _Request:
    source: str
    text: str
    items: tuple[tuple[int, OutboundSms], ...]  # (index in the batch, message); phones unique


class SmsClub:
    type = "smsclub"

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = settings.name
        get = settings.get
        token = get("token", str, secret=True)
        if not token.strip():
            raise settings.error("token", "a non-empty string")
        self._phone_rx = re.compile(get("phone_pattern", str, r"[0-9]{7,15}"))
        texts = get("invalid_number_texts", list, DEFAULT_INVALID_NUMBER_TEXTS)
        self._invalid_texts = tuple(str(t).lower() for t in texts)
        self._check_senders = get("check_senders", bool, False)
        self._senders_ttl = float(get("senders_cache_seconds", (int, float), 600))
        self._window = float(get("duplicate_window", (int, float), 120))
        dup_state = get("duplicate_retry_state", str, "UNKNOWN").upper()
        if dup_state not in ("UNKNOWN", "ENROUTE"):
            raise settings.error("duplicate_retry_state", '"UNKNOWN" or "ENROUTE"')
        self._dup_state = UNKNOWN if dup_state == "UNKNOWN" else ENROUTE
        self._unknown_state = UNKNOWN if get("unknown_status_final", bool, False) else ENROUTE
        self._integration_id = get("integration_id", (str, int), None)
        rps = float(get("requests_per_second", (int, float), 9))

        self.limits = ProviderLimits(
            batch_size=MAX_PHONES,
            poll_batch_size=MAX_PHONES,
            max_concurrency=4,
            requests_per_second=rps or None,
        )
        self.capabilities = Capabilities(poll=True, balance=True, senders=True)
        self._url = settings.url or DEFAULT_URL
        # every request, sends, polls, balance and sender lists alike (9/s: "every call counted")
        self.pacer = RequestPacer(rps, clock=clock, sleep=sleep)
        self._client = make_client(
            replace(settings, url=self._url),
            pacer=self.pacer,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        self._clock = clock
        # message_id -> (when, attempt number) of a send that may have gone through unanswered.
        self._maybe_sent: dict[str, tuple[float, int]] = {}
        self._attempts = itertools.count(1)
        self._senders_cache: tuple[float, frozenset[str]] | None = None

    def __repr__(self) -> str:  # the client's headers hold the token: never show them
        return f"SmsClub(name={self.name!r}, url={self._url!r})"

    # -- send -------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        valid: list[tuple[int, OutboundSms]] = []
        senders = await self._known_senders()
        for i, sms in enumerate(batch):
            error = self._refuse_locally(sms, senders)
            if error is not None:
                results[i] = SendResult(sms.message_id, error=error)
            else:
                valid.append((i, sms))
        now = self._clock()
        self._maybe_sent = {k: v for k, v in self._maybe_sent.items() if now - v[0] < self._window}
        for _, sms in valid:
            if sms.maybe_sent and sms.message_id not in self._maybe_sent:
                # resumed after a restart or taken over from a process that died: that process's
                # request may have gone through, so a 453 now means it did
                self._maybe_sent[sms.message_id] = (now, EARLIER_PROCESS)
        plan = _plan(valid)
        results.update(await self._run(plan, may_raise=True))
        return [results[i] for i in range(len(batch))]

    def _refuse_locally(self, sms: OutboundSms, senders: frozenset[str] | None) -> Permanent | None:
        if not self._phone_rx.fullmatch(sms.destination):
            return Permanent(
                "destination is not a valid number", command_status=ESME_RINVDSTADR, err=ERR_INVALID_NUMBER
            )
        if not sms.text:
            return Permanent("empty text", command_status=ESME_RINVMSGLEN, err=ERR_EMPTY_TEXT)
        if senders is not None and sms.source not in senders:
            return Permanent(
                f"sender {sms.source!r} is not in /sms/originator",
                command_status=ESME_RINVSRCADR,
                err=ERR_SENDER,
            )
        return None

    async def _run(self, plan: Sequence[_Request], *, may_raise: bool) -> dict[int, SendResult]:
        """Send the requests in order; a request-level failure of the kind that hits every later
        request too (throttling, outage, credentials) stops the batch."""
        results: dict[int, SendResult] = {}
        for n, req in enumerate(plan):
            try:
                results.update(await self._send_request(req))
            except (Retryable, Misconfigured) as e:
                if may_raise and n == 0:  # nothing sent yet: the whole batch failed
                    raise
                for rest in plan[n:]:
                    results.update({i: SendResult(sms.message_id, error=e) for i, sms in rest.items})
                break
            except Permanent as e:  # about this request's content only
                if may_raise and len(plan) == 1:
                    raise
                results.update({i: SendResult(sms.message_id, error=e) for i, sms in req.items})
        return results

    async def _send_request(self, req: _Request) -> dict[int, SendResult]:
        body: dict[str, Any] = {
            "phone": [sms.destination for _, sms in req.items],
            "message": req.text,
            "src_addr": req.source,
        }
        if self._integration_id is not None:
            body["integration_id"] = self._integration_id
        attempt = next(self._attempts)
        try:
            resp = await self._post("/sms/send", body)
        except _MaybeSent:
            self._remember([sms for _, sms in req.items], attempt)
            raise
        if resp.status_code >= 500:
            self._remember([sms for _, sms in req.items], attempt)
        if resp.status_code == 453:
            return await self._on_duplicate(req)
        self._raise_for_status(resp)
        try:
            info = _mapping(_success(resp), "info")
            add_info = _mapping(_success(resp), "add_info")
        except ValueError as e:
            self._remember([sms for _, sms in req.items], attempt)
            raise _MaybeSent(f"POST /sms/send: unreadable answer ({e})") from None

        by_phone = {sms.destination: (i, sms) for i, sms in req.items}
        results: dict[int, SendResult] = {}
        for provider_id, phone in info.items():
            hit = by_phone.get(_digits(phone))
            if hit is None or hit[0] in results:
                log.warning("smsclub %s: id %s names a phone we did not send", self.name, provider_id)
                continue
            results[hit[0]] = SendResult(
                hit[1].message_id, provider_id=str(provider_id), state=ENROUTE, provider_status="ENROUTE"
            )
        for phone, reason in add_info.items():
            hit = by_phone.get(_digits(phone))
            if hit is not None and hit[0] not in results:
                results[hit[0]] = SendResult(hit[1].message_id, error=self._refusal(str(reason)))
        missing = [sms for i, sms in req.items if i not in results]
        self._forget(sms for i, sms in req.items if i in results)
        if missing:
            self._remember(missing, attempt)
            lost = _MaybeSent("POST /sms/send: phone missing from the answer")
            results.update(
                {i: SendResult(sms.message_id, error=lost) for i, sms in req.items if i not in results}
            )
        return results

    def _refusal(self, reason: str) -> Permanent:
        if any(t in reason.lower() for t in self._invalid_texts):
            status, err = ESME_RINVDSTADR, ERR_INVALID_NUMBER
        else:
            status, err = ESME_RSUBMITFAIL, ERR_REFUSED
        return Permanent(f"SMS Club: {reason}", command_status=status, err=err, http_status=200)

    async def _on_duplicate(self, req: _Request) -> dict[int, SendResult]:
        origins = {self._maybe_sent.get(sms.message_id, (0.0, None))[1] for _, sms in req.items}
        if None not in origins and len(origins) == 1:
            # Our retry of one unanswered request: that request went through (smsclub.md, 453).
            log.info(
                "smsclub %s: 453 on our own retry of %d message(s); accepted without provider id",
                self.name,
                len(req.items),
            )
            self._forget(sms for _, sms in req.items)
            return {
                i: SendResult(sms.message_id, state=self._dup_state, provider_status="453")
                for i, sms in req.items
            }
        if len(req.items) == 1:
            ((i, sms),) = req.items
            dup = Permanent(
                "SMS Club 453: same text to the same number within 2 minutes",
                command_status=ESME_RSUBMITFAIL,
                err=ERR_DUPLICATE,
                http_status=453,
            )
            return {i: SendResult(sms.message_id, error=dup)}
        singles = [_Request(req.source, req.text, (item,)) for item in req.items]
        return await self._run(singles, may_raise=False)

    def _remember(self, messages: Sequence[OutboundSms], attempt: int) -> None:
        now = self._clock()
        for sms in messages:
            self._maybe_sent[sms.message_id] = (now, attempt)

    def _forget(self, messages: Any) -> None:
        for sms in messages:
            self._maybe_sent.pop(sms.message_id, None)

    async def _known_senders(self) -> frozenset[str] | None:
        if not self._check_senders:
            return None
        now = self._clock()
        if self._senders_cache is None or now - self._senders_cache[0] >= self._senders_ttl:
            self._senders_cache = (now, frozenset(await self.senders()))
        return self._senders_cache[1]

    # -- status, balance, senders -----------------------------------------------------------

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        reports: list[StatusReport] = []
        ids = [str(p) for p in provider_ids]
        for start in range(0, len(ids), MAX_PHONES):
            chunk = ids[start : start + MAX_PHONES]
            resp = await self._post("/sms/status", {"id_sms": chunk})
            self._raise_for_status(resp)
            try:
                info = _mapping(_success(resp), "info")
            except ValueError as e:
                raise Retryable(f"POST /sms/status: unreadable answer ({e})") from None
            wanted = set(chunk)
            reports.extend(
                self._report(str(pid), str(word)) for pid, word in info.items() if str(pid) in wanted
            )
        return reports

    def _report(self, provider_id: str, word: str) -> StatusReport:
        state = STATUS_TABLE.get(word.upper())
        if state is None:
            log.warning("smsclub %s: unknown status word %r for %s", self.name, word, provider_id)
            state = self._unknown_state
        return StatusReport(provider_id, state, word)

    async def balance(self) -> list[Balance]:
        resp = await self._post("/sms/balance")
        self._raise_for_status(resp)
        try:
            info = _success(resp).get("info")
            if isinstance(info, list) and len(info) == 2:  # the seed's array form
                info = {"money": info[0], "currency": info[1]}
            if not isinstance(info, dict):
                raise ValueError("no info object")
            return [Balance(float(info["money"]), str(info["currency"]))]
        except (ValueError, KeyError, TypeError) as e:
            raise Retryable(f"POST /sms/balance: unreadable answer ({e})") from None

    async def senders(self) -> list[str]:
        resp = await self._post("/sms/originator")
        self._raise_for_status(resp)
        try:
            info = _success(resp).get("info")
        except ValueError as e:
            raise Retryable(f"POST /sms/originator: unreadable answer ({e})") from None
        if isinstance(info, dict):  # a PHP array with keys
            info = list(info.values())
        return [str(s) for s in info] if isinstance(info, list) else []

    # -- what SMS Club does not have ----------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        raise NotSupported("SMS Club has no callbacks: statuses are polled")

    async def inbound(self) -> list[Inbound]:
        raise NotSupported("SMS Club's JSON API has no incoming messages")

    async def cancel(self, provider_id: str) -> bool:
        raise NotSupported("SMS Club has no cancel call")

    async def close(self) -> None:
        await self._client.aclose()

    # -- HTTP -------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            if body is None:
                return await self._client.post(path)
            return await self._client.post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as e:
            raise Retryable(f"POST {path}: connection failed ({type(e).__name__})") from None
        except httpx.TransportError as e:  # the request may have been read and acted upon
            raise _MaybeSent(f"POST {path}: no answer ({type(e).__name__})") from None

    @staticmethod
    def _raise_for_status(resp: httpx.Response) -> None:
        classify_status(resp)  # 401/403, 429, 5xx
        code = resp.status_code
        if code == 200:
            return
        what = f"POST {resp.request.url.path}: HTTP {code} {resp.text[:200]!r}"
        if code == 400:
            raise Permanent(what, command_status=ESME_RSUBMITFAIL, err="400", http_status=code)
        raise Permanent(what, command_status=ESME_RSYSERR, err=f"{code:03d}"[-3:], http_status=code)


def _plan(items: Sequence[tuple[int, OutboundSms]]) -> list[_Request]:
    """Group by (source, text); a repeated phone goes to a later round; ≤100 phones a request."""
    rounds: dict[tuple[str, str], list[list[tuple[int, OutboundSms]]]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for i, sms in items:
        group = rounds.setdefault((sms.source, sms.text), [])
        key = (sms.source, sms.text, sms.destination)
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(group):
            group.append([])
        group[n].append((i, sms))
    return [
        _Request(source, text, tuple(phones[k : k + MAX_PHONES]))
        for (source, text), group in rounds.items()
        for phones in group
        for k in range(0, len(phones), MAX_PHONES)
    ]


def _success(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        raise ValueError("not JSON") from None
    body = data.get("success_request") if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise ValueError("no success_request object")
    return body


def _mapping(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None or value == []:  # PHP encodes an empty array as []
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return value


def _digits(value: object) -> str:
    return re.sub(r"\D", "", str(value))
