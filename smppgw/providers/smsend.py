"""smSend REST API adapter (seed 003; ../shared/providers/smsend.md).

Owns: the smSend login (session key or access token, shared by all requests, renewed on a
401), the order body, the status-word table, and the error classification. `settings.url`
is the API root, e.g. ``https://app.gateway.smsend.it/API/v1.0/REST``.

**One message, one order.** smSend gives one `order_id` to a whole multi-recipient order, so
per-message status would have to be matched on `recipients[].destination`, and `cancel_sm`
(DELETE /sms/{order_id}) would cancel every message of the order. We send each message as
its own order with `order_id` = our message id instead: after a timeout or 5xx,
GET /sms/{message_id} says exactly whether *this* message went out, an invalid recipient
refuses only its own message, and a cancel hits only the message the ESME named. The cost is
one request per message, spread over `max_concurrency` connections; `limits.batch_size` is 1.

Inferences ([INF] in the spec), each an option of ``[providers.<name>]`` with its default:

* ``auth = "session"`` (GET /login, header Session_key); ``"token"`` uses GET /token and
  Access_token. Either way a 401 triggers one fresh login and one retry of the same request.
* ``message_type = "N"``: the only type with delivery reports.
* ``send_sender``: true unless message_type is L/LL (those forbid a custom TPOA, so the
  sender is left out and smSend uses the account's default).
* ``recipient_prefix = "+"``: our destinations are bare international digits.
* ``timezone = "Europe/Rome"``: the zone of scheduled_delivery_time, delivery_date and
  sms_date (all ``yyyyMMddHHmmss``, none documented with a zone);
  ``send_timezone = false`` adds the GitHub-only scheduled_delivery_timezone field.
* ``currency = "EUR"`` for the `money` balance; SMS credits are reported as unit "SMS:<type>".
* ``status_overrides = {}``: word → receipt stat word (e.g. ``{DEMO = "DELIVRD"}``) on top of
  STATUS_TABLE. Words not in the table map to ENROUTE (keep polling; the gateway's horizon
  ends them as UNKNOWN) and are logged, because UNKNOWN (7) would be final here.
* Receipt `err:` codes are local: 000 for progress and delivery, 006…016 per failure word.
* 400 bodies are free text: hints for credit (``no_credit_status = 0x45``), recipient 0x0B,
  sender 0x0A, schedule 0x61, length 0x01, else 0x45. 404 on a call = user_key unknown →
  Misconfigured, except where the spec gives 404 a meaning (order not found, login).
* ``alias_page_size = 50``; alias states 1, 2 and 9 are usable senders.
* ``inbound_limit = 100``, ``inbound_sims = []`` (all SIMs); MO `keyword` is dropped, `message`
  is the text; `id_sim:id_message` is the de-duplication id.
* ``dlr_callback = false``: smSend documents no callback; when true, parse_webhook reads the
  unverified Aruba-style one (order_id, status, recipient, delivery_date as query, form or
  JSON).
* A message whose send and reconcile both failed is checked with GET before it is resent
  (in memory only); that Retryable carries maybe_sent=True, "order not created" False.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

import httpx

from smppgw.config import ProviderSettings
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVSCHED,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    EXPIRED,
    FINAL_STATES,
    REJECTED,
    STAT_WORDS,
    UNDELIVERABLE,
    UNKNOWN,
    Balance,
    Capabilities,
    Inbound,
    Misconfigured,
    NotSupported,
    OutboundSms,
    Permanent,
    ProviderError,
    ProviderLimits,
    Retryable,
    SendResult,
    StatusReport,
    WebhookRequest,
)
from smppgw.providers.http import classify_status, make_client, request

log = logging.getLogger(__name__)

# Every word of the spec's status list → (SMPP message_state, receipt err:).
STATUS_TABLE: dict[str, tuple[int, str]] = {
    "WAITING": (ENROUTE, "000"),
    "SCHEDULED": (ENROUTE, "000"),
    "SENT": (ENROUTE, "000"),  # also the last word of types without DLR; the horizon ends those
    "WAIT4DLVR": (ENROUTE, "000"),
    "DLVRD": (DELIVERED, "000"),
    "TIMEOUT": (EXPIRED, "006"),
    "ERROR": (UNDELIVERABLE, "007"),
    "KO": (REJECTED, "008"),
    "UNKNRCPT": (REJECTED, "009"),
    "UNKNPFX": (REJECTED, "010"),
    "INVALIDDST": (REJECTED, "011"),
    "BLACKLISTED": (REJECTED, "012"),
    "INVALIDCONTENTS": (REJECTED, "013"),
    "TOOM4USER": (REJECTED, "014"),
    "TOOM4NUM": (REJECTED, "015"),
    "DEMO": (UNKNOWN, "016"),  # sent in demo mode: final, but nothing was delivered
}
UNLISTED = (ENROUTE, "999")
USABLE_ALIAS_STATES = frozenset({1, 2, 9})
LOW_COST_TYPES = frozenset({"L", "LL"})
TIME_FORMAT = "%Y%m%d%H%M%S"
# First match wins: a credit refusal may mention "message", a recipient one "number".
_HINTS: tuple[tuple[tuple[str, ...], int | None], ...] = (
    (("credit", "money", "balance"), None),  # None: the configurable no_credit_status
    (("recipient", "destination", "number"), ESME_RINVDSTADR),
    (("sender", "tpoa", "alias"), ESME_RINVSRCADR),
    (("schedul",), ESME_RINVSCHED),
    (("length", "too long", "empty", "chars", "characters"), ESME_RINVMSGLEN),
)
_MAX_PAGES = 100  # a loop guard for /alias and /newsrsmsmessage, not an API limit
_MAX_UNSETTLED = 10_000


@dataclass(frozen=True, slots=True)
class _Login:
    """The pair a login returned; repr hides both halves."""

    user_key: str = field(repr=False)
    key: str = field(repr=False)
    header: str  # "Session_key" or "Access_token"

    @property
    def headers(self) -> dict[str, str]:
        # Underscored names as documented: smSend refuses the User-Key spelling.
        return {"user_key": self.user_key, self.header: self.key}


class SmSend:
    """The smSend adapter; see the module docstring for the design and its options."""

    type = "smsend"

    def __init__(self, settings: ProviderSettings) -> None:
        get = settings.get
        self.name = settings.name
        self._username: str = get("username", str, secret=True)
        self._password: str = get("password", str, secret=True)
        self._auth_mode: str = get("auth", str, "session")
        if self._auth_mode not in ("session", "token"):
            raise settings.error("auth", '"session" or "token"')
        self._message_type: str = get("message_type", str, "N")
        self._send_sender: bool = get("send_sender", bool, self._message_type not in LOW_COST_TYPES)
        self._prefix: str = get("recipient_prefix", str, "+")
        self._tz = settings.zone("timezone", "Europe/Rome")
        self._send_tz: bool = get("send_timezone", bool, False)
        self._currency: str = get("currency", str, "EUR")
        self._no_credit: int = get("no_credit_status", int, ESME_RSUBMITFAIL)
        self._page_size: int = get("alias_page_size", int, 50)
        self._inbound_limit: int = min(100, get("inbound_limit", int, 100))
        self._inbound_sims: list[str] = get("inbound_sims", list, [])
        self._callback: bool = get("dlr_callback", bool, False)
        self._table = dict(STATUS_TABLE)
        stats = {word: state for state, word in STAT_WORDS.items()}
        for word, stat in get("status_overrides", dict, {}).items():
            if stat not in stats:
                raise settings.error(f"status_overrides.{word}", f"one of {', '.join(stats)}")
            self._table[str(word).upper()] = (stats[stat], self._table.get(str(word).upper(), UNLISTED)[1])
        concurrency: int = get("max_concurrency", int, 4)
        text_max = 160 if self._message_type in LOW_COST_TYPES else 1000
        self.limits = ProviderLimits(batch_size=1, max_concurrency=concurrency, max_text_length=text_max)
        self.capabilities = Capabilities(
            poll=True,
            webhooks=self._callback,
            inbound_poll=True,
            balance=True,
            senders=True,
            cancel=True,
            schedule=True,
            unicode_flag=True,
        )
        _redact_httpx_log()
        self._client = make_client(settings, max_connections=max(concurrency, 4))
        self.pacer = self._client.pacer  # every request; its rate is set by the gateway
        self._login: _Login | None = None
        self._login_lock = asyncio.Lock()
        self._unsettled: dict[str, None] = {}  # ordered set of message ids whose send is in doubt

    def __repr__(self) -> str:
        return f"SmSend(name={self.name!r}, auth={self._auth_mode!r})"

    # -- login and authenticated calls ------------------------------------------------------

    async def _authenticate(self, stale: _Login | None = None) -> _Login:
        async with self._login_lock:
            # Whoever waited on the lock uses the login that the first waiter just made.
            if self._login is not None and self._login is not stale:
                return self._login
            token = self._auth_mode == "token"
            path = "/token" if token else "/login"
            resp = await request(
                self._client, "GET", path, params={"username": self._username, "password": self._password}
            )
            code = resp.status_code
            if code == 404:
                raise Misconfigured(f"GET {path}: HTTP 404 (credentials incorrect)", http_status=404)
            classify_status(resp)
            if code != 200:
                raise Misconfigured(f"GET {path}: HTTP {code}: {self._scrub(resp.text)}", http_status=code)
            user_key, sep, key = resp.text.strip().partition(";")
            if not (sep and user_key and key):
                raise Misconfigured(f"GET {path}: answer is not USER_KEY;KEY (wrong url?)", http_status=code)
            self._login = _Login(user_key, key, "Access_token" if token else "Session_key")
            log.info("smsend login provider=%s auth=%s", self.name, self._auth_mode)
            return self._login

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with the login headers; a 401 renews the login and repeats the request once.

        Repeating is safe even for POST /sms: a 401 means smSend refused the keys and did nothing.
        """
        login = self._login or await self._authenticate()
        resp = await request(self._client, method, path, headers=login.headers, **kwargs)
        if resp.status_code == 401:
            log.info("smsend login expired provider=%s; logging in again", self.name)
            login = await self._authenticate(stale=login)
            resp = await request(self._client, method, path, headers=login.headers, **kwargs)
            if resp.status_code == 401:
                raise Misconfigured(f"{method} {path}: HTTP 401 after a fresh login", http_status=401)
        return resp

    def _check(self, resp: httpx.Response) -> Any:
        """JSON of a 2xx answer; raise the classified error for the rest."""
        code = resp.status_code
        what = f"{resp.request.method} {resp.request.url.path}: HTTP {code}"
        if 200 <= code < 300:
            try:
                return resp.json()
            except ValueError:
                raise Retryable(f"{what}: body is not JSON") from None
        classify_status(resp)
        if code == 404:
            raise Misconfigured(f"{what} (user_key not found)", http_status=code)
        raise Permanent(f"{what}: {self._scrub(resp.text)}", http_status=code)

    def _scrub(self, text: str) -> str:
        text = text.strip()[:300]
        login = self._login
        for secret in (self._password, *(() if login is None else (login.user_key, login.key))):
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- send -------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        results: list[SendResult] = []
        for i, sms in enumerate(batch):
            try:
                results.append(await self._send_one(sms))
            except ProviderError as e:
                if not results:
                    raise
                # Earlier messages went out: report them, and this failure for the rest.
                results.extend(SendResult(m.message_id, error=e) for m in batch[i:])
                break
        return results

    def _order(self, sms: OutboundSms) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_type": self._message_type,
            "message": sms.text,
            "recipient": [self._prefix + re.sub(r"\D", "", sms.destination)],
            "order_id": sms.message_id,  # our id: the key that GET /sms/{order_id} reconciles on
        }
        if self._send_sender and sms.source:
            body["sender"] = sms.source
        if sms.unicode:
            body["encoding"] = "ucs2"
        if sms.schedule_at is not None:
            # One of the six documented formats; never the seed sample's ISO form with a T.
            body["scheduled_delivery_time"] = sms.schedule_at.astimezone(self._tz).strftime(TIME_FORMAT)
            if self._send_tz:
                body["scheduled_delivery_timezone"] = self._tz.key
        return body

    async def _send_one(self, sms: OutboundSms) -> SendResult:
        if sms.maybe_sent or sms.message_id in self._unsettled:
            found = await self._lookup(sms.message_id)
            self._unsettled.pop(sms.message_id, None)
            if found is not None:
                log.info("smsend order %s exists already; not resending", sms.message_id)
                return found
        try:
            resp = await self._call("POST", "/sms", json=self._order(sms))
        except Retryable as e:
            if not e.maybe_sent:  # never reached smSend (connect error): nothing to reconcile
                raise
            return await self._reconcile(sms, e)
        code = resp.status_code
        if code >= 500:
            return await self._reconcile(
                sms, Retryable(f"POST /sms: HTTP {code}", http_status=code, maybe_sent=True)
            )
        if code == 400:
            return SendResult(sms.message_id, error=self._refusal(resp.text, code))
        data = self._check(resp)
        if str(data.get("result", "OK")).upper() != "OK":
            return SendResult(sms.message_id, error=self._refusal(json.dumps(data), code))
        return SendResult(
            sms.message_id, provider_id=str(data.get("order_id") or sms.message_id), provider_status="OK"
        )

    def _refusal(self, text: str, http_status: int) -> Permanent:
        low = text.lower()
        status = next(
            (self._no_credit if s is None else s for words, s in _HINTS if any(w in low for w in words)),
            ESME_RSUBMITFAIL,
        )
        return Permanent(
            f"POST /sms: HTTP {http_status}: {self._scrub(text)}",
            command_status=status,
            err=str(http_status)[:3],
            http_status=http_status,
        )

    async def _reconcile(self, sms: OutboundSms, cause: Retryable) -> SendResult:
        try:
            found = await self._lookup(sms.message_id)
        except ProviderError:
            self._unsettled[sms.message_id] = None
            while len(self._unsettled) > _MAX_UNSETTLED:
                self._unsettled.pop(next(iter(self._unsettled)))
            raise Retryable(
                f"{cause.detail}; order state unknown, checked before any resend",
                command_status=cause.command_status,
                http_status=cause.http_status,
                maybe_sent=True,
            ) from None
        if found is None:
            # GET /sms/{order_id} says it does not exist: a resend cannot duplicate it.
            raise Retryable(
                f"{cause.detail}; order not created",
                command_status=cause.command_status,
                http_status=cause.http_status,
                maybe_sent=False,
            )
        log.info("smsend send of %s failed (%s) but the order exists", sms.message_id, cause.detail)
        return found

    async def _lookup(self, order_id: str) -> SendResult | None:
        reports = await self._status(order_id)
        if reports is None:
            return None
        first = reports[0] if reports else None
        return SendResult(
            order_id,
            provider_id=order_id,
            state=first.state if first else ENROUTE,
            provider_status=first.provider_status if first else "",
        )

    # -- status -----------------------------------------------------------------------------

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        reports: list[StatusReport] = []
        for pid in provider_ids:
            reports.extend(await self._status(pid) or ())
        return reports

    async def _status(self, order_id: str) -> list[StatusReport] | None:
        """Reports for one order, None when smSend does not know it."""
        resp = await self._call("GET", f"/sms/{quote(order_id, safe='')}")
        if resp.status_code == 404:
            return None
        data = self._check(resp)
        return [
            self._report(order_id, r.get("status"), r.get("destination"), r.get("delivery_date"))
            for r in data.get("recipients") or ()
            if isinstance(r, dict)
        ]

    def _report(self, order_id: str, word: Any, destination: Any, when: Any) -> StatusReport:
        word = str(word or "").strip().upper()
        if word not in self._table:
            log.warning("smsend unknown status word %r for order %s; kept as ENROUTE", word, order_id)
        state, err = self._table.get(word, UNLISTED)
        done_at = self._time(when) if state in FINAL_STATES else None
        return StatusReport(
            order_id,
            state,
            word,
            err,
            done_at=done_at,
            message_id=order_id,
            destination=re.sub(r"\D", "", str(destination or "")) or None,
        )

    def _time(self, value: Any) -> datetime | None:
        text = str(value or "").strip()
        for fmt in (TIME_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=self._tz).astimezone(UTC)
            except ValueError:
                continue
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        if not self._callback:
            raise NotSupported("smSend documents no callback (dlr_callback = true reads the Aruba-style one)")
        fields = {k: v[0] for k, v in request.query.items() if v}
        body = request.body.strip()
        if body.startswith(b"{"):
            fields.update({k: str(v) for k, v in json.loads(body).items()})
        elif body:
            fields.update({k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
        if not fields.get("order_id") or not fields.get("status"):
            raise ValueError("smSend callback without order_id and status")
        return [
            self._report(
                fields["order_id"], fields["status"], fields.get("recipient"), fields.get("delivery_date")
            )
        ]

    async def cancel(self, provider_id: str) -> bool:
        resp = await self._call("DELETE", f"/sms/{quote(provider_id, safe='')}")
        if resp.status_code == 404:  # unknown order, or no longer SCHEDULED
            return False
        self._check(resp)
        return True

    # -- account ----------------------------------------------------------------------------

    async def balance(self) -> list[Balance]:
        resp = await self._call("GET", "/status", params={"getMoney": "true", "typeAliases": "true"})
        data = self._check(resp)
        out = [] if data.get("money") is None else [Balance(float(data["money"]), self._currency)]
        out += [Balance(float(s.get("quantity") or 0), f"SMS:{s.get('type')}") for s in data.get("sms") or ()]
        return out

    async def senders(self) -> list[str]:
        names: list[str] = []
        seen = 0
        for page in range(1, _MAX_PAGES + 1):
            data = self._check(
                await self._call("GET", "/alias", params={"pageNumber": page, "pageSize": self._page_size})
            )
            items = data.get("alias") or []
            names += [str(a["alias"]) for a in items if _int(a.get("alias-state")) in USABLE_ALIAS_STATES]
            seen += len(items)
            if not items or seen >= _int(data.get("total")):
                break
        return names

    async def inbound(self) -> list[Inbound]:
        sims = ",".join(self._inbound_sims)
        path = f"/newsrsmsmessage/{quote(sims, safe='+,')}" if sims else "/newsrsmsmessage"
        out: list[Inbound] = []
        for _ in range(_MAX_PAGES):
            try:
                data = self._check(await self._call("GET", path, params={"limit": self._inbound_limit}))
            except ProviderError as e:
                if not out:
                    raise
                # smSend will not send these again: hand over what arrived, fetch the rest next time.
                log.warning("smsend inbound page failed after %d messages: %s", len(out), e.detail)
                break
            items = data.get("srsmshistory")
            if items is None:  # the seed names the list after another call; take any list
                items = next((v for v in data.values() if isinstance(v, list)), [])
            out += [self._inbound(m) for m in items]
            if len(items) < self._inbound_limit:  # the API returns "new since last call": drained
                break
        return out

    def _inbound(self, m: dict[str, Any]) -> Inbound:
        sim = re.sub(r"\D", "", str(m.get("id_sim") or ""))
        return Inbound(
            source=re.sub(r"\D", "", str(m.get("sender") or "")),
            destination=sim,
            text=str(m.get("message") or ""),
            provider_id=f"{sim}:{m.get('id_message')}",
            received_at=self._time(m.get("sms_date")),
        )

    async def close(self) -> None:
        await self._client.aclose()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class _RedactPassword(logging.Filter):
    """httpx logs each request URL at INFO; the login URL carries the password in its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        return True


def _redacted(arg: object) -> object:
    if isinstance(arg, httpx.URL) and "password" in arg.params:
        return arg.copy_set_param("password", "REDACTED")
    return arg


def _redact_httpx_log() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactPassword) for f in logger.filters):
        logger.addFilter(_RedactPassword())
