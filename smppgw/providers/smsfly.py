"""SMS-fly adapter (REST API v2.04, seed 001; ../shared/providers/smsfly.md).

Every call is a JSON POST of `{"auth":{"key":…},"action":…,"data":{…}}` to one URL
(normally https://sms-fly.ua/api/v2/api.php). This module owns that envelope, the one
status table, the one error table and the options below; it never logs or repeats the key.

Choices the spec marks [INF], with the option that changes each (defaults in brackets):

* `channels` ["sms"]: "sms", "viber" or "viber,sms" (Viber first, SMS as the fallback).
  Viber uses `viber_source` [the SMS sender] and the same text and ttl.
* Overall status of a multi-channel message: delivered if any channel is DELIVRD/VIEWED;
  otherwise pending while any channel is not final; otherwise the last final channel in
  priority order, skipping REFUND (the channel that was never used) when another exists.
* `ttl` is valid_until in whole minutes, rounded up; without a validity `default_ttl` [1440].
  Out of 1–1440 it is clamped (`clamp_ttl` [true]); with clamp_ttl=false → ESME_RINVEXPIRY.
* A send whose outcome is unknown (read timeout or reset after the request went out, or a 2xx
  answer without a messageID) is not resent, because SMS-fly has no client reference to
  de-duplicate on: Permanent RSYSERR. `resend_on_unknown_outcome` [false] makes it
  Retryable(maybe_sent=True) instead. Connection failures before sending stay Retryable.
* `success` is checked whatever the HTTP code; 429 and 5xx are Retryable before the body is read.
* Error words → SMPP: INVRECIPIENT 0x0B, INVSOURCE 0x0A, INVTEXT/INV{SMS,VIBER}MESSAGE 0x01,
  INVROUTE `invroute_status` [0x45], INSUFFICIENTFUNDS (and a send answer saying
  INSUFFICIENTFUND) `no_credit_status` [0x45], request-format words 0x08, FORBIDDEN and any
  401/403 → Misconfigured, INVMSGID on a poll → the id is left out.
* Status words → message_state as in the spec table; an unknown word counts as ENROUTE
  (keep polling until the gateway's horizon) and is logged. Receipt `err:` codes: "000" for
  delivered/pending, otherwise the word's row number in the seed's status table (ERROR_TABLE:
  100 + row in the seed's error table; FORBIDDEN 403; INSUFFICIENTFUNDS 113).
* Status dates carry no offset: read them in the answer envelope's offset, else
  `utc_offset` ["+0200"].
* Checked before any request: no recipient digits → 0x0B; no sender and no `default_source`
  [""] → 0x0A. schedule_at more than a minute ahead → ESME_RINVSCHED (SMS-fly cannot schedule);
  `reject_future_schedule` [true].
* `sources_action` ["GETSOURCES"; the seed's table says GETSOURCE], `balance_action`
  ["GETBALANCE"; "GETBALANCEEXT" gives one Balance per configured channel], `currency`
  ["UAH"; the API names none], `price_mccs` [["255"]], `max_concurrency` [4],
  `requests_per_second` [none documented].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from smppgw.config import ProviderSettings
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVEXPIRY,
    ESME_RINVMSGLEN,
    ESME_RINVSCHED,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    EXPIRED,
    FINAL_STATES,
    REJECTED,
    UNDELIVERABLE,
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

DEFAULT_URL = "https://sms-fly.ua/api/v2/api.php"
CHANNELS = ("sms", "viber")
TTL_MIN, TTL_MAX = 1, 1440  # minutes [S001]

# Every status word of the seed (plus the ACCEPTED spelling of the send answer) →
# (SMPP message_state, receipt err:). "Accepted" means queued: ENROUTE, never SMPP ACCEPTED.
STATUS_TABLE: dict[str, tuple[int, str]] = {
    "ACCEPTD": (ENROUTE, "000"),
    "ACCEPTED": (ENROUTE, "000"),
    "PENDING": (ENROUTE, "000"),
    "INPROGRESS": (ENROUTE, "000"),
    "MODERATION": (ENROUTE, "000"),
    "RESERVED": (ENROUTE, "000"),
    "SENT": (ENROUTE, "000"),
    "DELIVRD": (DELIVERED, "000"),
    "VIEWED": (DELIVERED, "000"),
    "EXPIRED": (EXPIRED, "007"),
    "UNDELIV": (UNDELIVERABLE, "008"),
    "ERROR": (UNDELIVERABLE, "010"),
    "STOPED": (REJECTED, "009"),
    "INSUFFICIENTFUND": (REJECTED, "011"),
    "REFUND": (UNDELIVERABLE, "014"),
}

# Error code of a `success:0` answer → (exception class, submit_sm_resp status, receipt err:).
ERROR_TABLE: dict[str, tuple[type[ProviderError], int, str]] = {
    "INVREQUEST": (Permanent, ESME_RSYSERR, "101"),
    "INVACTION": (Permanent, ESME_RSYSERR, "102"),
    "INVRECIPIENT": (Permanent, ESME_RINVDSTADR, "103"),
    "INVTEXT": (Permanent, ESME_RINVMSGLEN, "104"),
    "INVBUTTON": (Permanent, ESME_RSYSERR, "105"),
    "INVIMAGEURL": (Permanent, ESME_RSYSERR, "106"),
    "INVROUTE": (Permanent, ESME_RSUBMITFAIL, "107"),
    "INVSOURCE": (Permanent, ESME_RINVSRCADR, "108"),
    "INVCHANNELS": (Permanent, ESME_RSYSERR, "109"),
    "INVSMSMESSAGE": (Permanent, ESME_RINVMSGLEN, "110"),
    "INVVIBERMESSAGE": (Permanent, ESME_RINVMSGLEN, "111"),
    "INVMSGID": (Permanent, 0x67, "112"),  # ESME_RQUERYFAIL
    "INSUFFICIENTFUNDS": (Permanent, ESME_RSUBMITFAIL, "113"),
    "FORBIDDEN": (Misconfigured, ESME_RSYSERR, "403"),
}
_UNKNOWN_ID_ERR = ERROR_TABLE["INVMSGID"][2]


class SmsFly:
    """One [providers.<name>] table of type smsfly."""

    type = "smsfly"

    def __init__(self, settings: ProviderSettings) -> None:
        get = settings.get
        self.name = settings.name
        self._url = settings.url or DEFAULT_URL
        self._key: str = get("api_key", str, secret=True)
        self.channels = _channels(settings, get("channels", (str, list), "sms"))
        self._default_source: str = get("default_source", str, "")
        self._viber_source: str = get("viber_source", str, "")
        self._default_ttl: int = get("default_ttl", int, TTL_MAX)
        self._clamp_ttl: bool = get("clamp_ttl", bool, True)
        self._resend_unknown: bool = get("resend_on_unknown_outcome", bool, False)
        self._reject_future_schedule: bool = get("reject_future_schedule", bool, True)
        self._overrides = {
            "INSUFFICIENTFUNDS": get("no_credit_status", int, ESME_RSUBMITFAIL),
            "INVROUTE": get("invroute_status", int, ESME_RSUBMITFAIL),
        }
        self._sources_action: str = get("sources_action", str, "GETSOURCES")
        self._balance_action: str = get("balance_action", str, "GETBALANCE")
        self._currency: str = get("currency", str, "UAH")
        self._fallback_tz = _offset(get("utc_offset", str, "+0200"))
        if self._fallback_tz is None:
            raise settings.error("utc_offset", 'an offset like "+0200"')
        self._price_mccs: list[str] = [str(m) for m in get("price_mccs", list, ["255"])]
        concurrency: int = get("max_concurrency", int, 4)
        self.limits = ProviderLimits(
            batch_size=1,  # one recipient per SENDMESSAGE [S001]
            max_concurrency=concurrency,
            requests_per_second=get("requests_per_second", (int, float), None),
            max_text_length=1000 if "viber" in self.channels else None,  # SMS length is undocumented
            poll_batch_size=1,
        )
        self.capabilities = Capabilities(poll=True, balance=True, senders=True, flash=True)
        self._client = make_client(settings, max_connections=concurrency)
        self.pacer = self._client.pacer  # every request; its rate is set by the gateway

    def __repr__(self) -> str:
        return f"SmsFly(name={self.name!r}, url={self._url!r}, channels={self.channels!r})"

    # -- Provider ---------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        """One SENDMESSAGE per message. Refusals of the message come back in SendResult.error;
        Retryable and Misconfigured concern the provider as a whole and are raised."""
        return [await self._send_one(sms) for sms in batch]

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        reports = []
        for pid in provider_ids:
            try:
                envelope = await self._call("GETMESSAGESTATUS", {"messageID": pid})
            except Permanent as e:
                if not isinstance(e, Misconfigured) and e.err == _UNKNOWN_ID_ERR:
                    continue
                raise
            report = self._report(pid, _dict(envelope.get("data")), self._tz(envelope))
            if report is not None:
                reports.append(report)
        return reports

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        raise NotSupported("SMS-fly documents no delivery or inbound callbacks")

    async def inbound(self) -> list[Inbound]:
        raise NotSupported("SMS-fly has no inbound (MO) API")

    async def cancel(self, provider_id: str) -> bool:
        raise NotSupported("SMS-fly has no cancel action")

    async def balance(self) -> list[Balance]:
        value = _dict((await self._call(self._balance_action, {})).get("data")).get("balance")
        try:
            if isinstance(value, dict):  # GETBALANCEEXT: {"sms": "…", "viber": "…"}
                return [Balance(_money(value[ch]), self._currency) for ch in self.channels if ch in value]
            return [Balance(_money(value), self._currency)]
        except (TypeError, ValueError):
            raise Retryable(f"{self._balance_action}: unreadable balance") from None

    async def senders(self) -> list[str]:
        """Approved SMS sender names (Viber ones when the only channel is Viber)."""
        channel = "sms" if "sms" in self.channels else self.channels[0]
        data = _dict((await self._call(self._sources_action, {"channels": [channel]})).get("data"))
        names = data.get(channel)
        return [str(n) for n in names] if isinstance(names, list) else []

    async def prices(
        self, mccs: Sequence[str] | None = None, *, mnc: str | None = None, channel: str = "sms"
    ) -> dict[str, float]:
        """Price per network as {"<mcc>-<mnc>": price}, e.g. {"255-01": 0.478}, for routing.

        Without `mnc`, GETPRICELIST for each MCC (default: the `price_mccs` option); with it,
        GETPRICE for that one network.
        """
        action, key = ("GETPRICELIST", "pricelist") if mnc is None else ("GETPRICE", "price")
        out: dict[str, float] = {}
        for mcc in mccs or self._price_mccs:
            data: dict[str, Any] = {"channels": [channel], "mcc": str(mcc)}
            if mnc is not None:
                data["mnc"] = str(mnc)
            table = _dict(_dict((await self._call(action, data)).get("data")).get(key)).get(channel)
            for mcc_key, networks in _dict(table).items():
                for mnc_key, price in _dict(networks).items():
                    try:
                        out[f"{mcc_key}-{mnc_key}"] = _money(price)
                    except (TypeError, ValueError):
                        log.warning("smsfly %s: unreadable price for %s-%s", self.name, mcc_key, mnc_key)
        return out

    async def close(self) -> None:
        await self._client.aclose()

    # -- sending ----------------------------------------------------------------------------

    async def _send_one(self, sms: OutboundSms) -> SendResult:
        try:
            envelope = await self._call("SENDMESSAGE", self._message(sms), sending=True)
        except Permanent as e:
            if isinstance(e, Misconfigured):
                raise
            return SendResult(sms.message_id, error=e)
        data = _dict(envelope.get("data"))
        provider_id = data.get("messageID")
        if not isinstance(provider_id, str | int) or provider_id == "":
            err = self._unknown_outcome("SENDMESSAGE: 2xx answer without a messageID")
            return SendResult(sms.message_id, error=err)
        provider_id = str(provider_id)
        entry = next((_dict(data[c]) for c in self.channels if isinstance(data.get(c), dict)), {})
        word = str(entry.get("status") or "ACCEPTD").upper()
        state, err = STATUS_TABLE.get(word, (ENROUTE, "000"))
        # cost is a number or a string [S001]; SendResult has no place for it, so it is only logged.
        log.debug("smsfly %s: %s %s, cost %r", self.name, provider_id, word, entry.get("cost"))
        if state in FINAL_STATES and state != DELIVERED:
            # The send answer itself says the message will not go (e.g. INSUFFICIENTFUND).
            status = self._overrides["INSUFFICIENTFUNDS"] if word == "INSUFFICIENTFUND" else ESME_RSUBMITFAIL
            error = Permanent(f"SENDMESSAGE: status {word}", command_status=status, err=err)
            return SendResult(sms.message_id, provider_id, error=error, state=state, provider_status=word)
        return SendResult(sms.message_id, provider_id, state=state, provider_status=word)

    def _message(self, sms: OutboundSms) -> dict[str, Any]:
        """The `data` of SENDMESSAGE; local checks raise Permanent before any request."""
        recipient = "".join(ch for ch in sms.destination if ch.isdigit())
        if not recipient:
            raise Permanent("SENDMESSAGE: no recipient digits", command_status=ESME_RINVDSTADR)
        source = sms.source or self._default_source
        if not source:
            raise Permanent("SENDMESSAGE: no sender name", command_status=ESME_RINVSRCADR)
        now = datetime.now(UTC)
        if self._reject_future_schedule and sms.schedule_at and sms.schedule_at > now + timedelta(minutes=1):
            raise Permanent("SENDMESSAGE: SMS-fly cannot schedule", command_status=ESME_RINVSCHED)
        ttl = self._ttl(sms.valid_until, now)
        data: dict[str, Any] = {"recipient": recipient, "channels": list(self.channels)}
        if "sms" in self.channels:
            data["sms"] = {"source": source, "ttl": ttl, "text": sms.text}
            if sms.flash:
                data["sms"]["flash"] = 1
        if "viber" in self.channels:
            data["viber"] = {"source": self._viber_source or source, "ttl": ttl, "text": sms.text}
        return data

    def _ttl(self, valid_until: datetime | None, now: datetime) -> int:
        if valid_until is None:
            minutes = self._default_ttl
        else:  # rounded up, so the provider never gives up before the ESME's validity
            minutes = math.ceil((valid_until - now).total_seconds() / 60)
        if TTL_MIN <= minutes <= TTL_MAX:
            return minutes
        if not self._clamp_ttl:
            raise Permanent(f"SENDMESSAGE: ttl {minutes} min outside 1–1440", command_status=ESME_RINVEXPIRY)
        return min(max(minutes, TTL_MIN), TTL_MAX)

    def _unknown_outcome(self, detail: str) -> ProviderError:
        if self._resend_unknown:
            return Retryable(detail, maybe_sent=True)
        return Permanent(f"{detail}; outcome unknown, not resent", command_status=ESME_RSYSERR)

    # -- status -----------------------------------------------------------------------------

    def _report(self, pid: str, data: Mapping[str, Any], tz: Any) -> StatusReport | None:
        order = list(self.channels) + [c for c in CHANNELS if c not in self.channels]
        seen: list[tuple[int, str, str, datetime | None]] = []
        for channel in order:
            entry = data.get(channel)
            if not isinstance(entry, dict) or not entry.get("status"):
                continue
            word = str(entry["status"]).upper()
            if word not in STATUS_TABLE:
                log.warning("smsfly %s: unknown status %r for %s, counted as ENROUTE", self.name, word, pid)
            state, err = STATUS_TABLE.get(word, (ENROUTE, "000"))
            seen.append((state, word, err, _date(entry.get("date"), tz)))
        if not seen:
            return None
        delivered = [s for s in seen if s[0] == DELIVERED]
        pending = [s for s in seen if s[0] not in FINAL_STATES]
        used = [s for s in seen if s[1] != "REFUND"] or seen
        state, word, err, done_at = (delivered or pending or used[-1:])[0]
        return StatusReport(pid, state, word, err=err, done_at=done_at)

    def _tz(self, envelope: Mapping[str, Any]) -> Any:
        stamp = str(envelope.get("date") or "")
        found = _offset(stamp.rsplit(" ", 1)[-1]) if stamp.count(" ") >= 2 else None
        return found or self._fallback_tz

    # -- transport --------------------------------------------------------------------------

    async def _call(self, action: str, data: dict[str, Any], *, sending: bool = False) -> dict[str, Any]:
        """POST one action and return the success envelope; raise a classified ProviderError."""
        body = {"auth": {"key": self._key}, "action": action, "data": data}
        try:
            response = await request(self._client, "POST", self._url, json=body)
        except Retryable as e:
            # A read timeout or a reset after the request went out: SMS-fly may have taken it.
            if sending and e.maybe_sent:
                raise self._unknown_outcome(f"{action}: {e.detail}") from None
            raise
        code = response.status_code
        if code == 429 or code >= 500:
            classify_status(response)
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if isinstance(envelope, dict):
            if envelope.get("success") in (1, "1") and 200 <= code < 300:
                return envelope
            error = envelope.get("error")
            if isinstance(error, dict) and error.get("code"):
                description = str(error.get("description") or "")
                raise self._error(str(error["code"]).upper(), description, action, code)
        classify_status(response)  # 401/403 without a readable body
        if 200 <= code < 300:
            detail = f"{action}: unreadable answer (HTTP {code})"
            raise self._unknown_outcome(detail) if sending else Retryable(detail)
        raise Permanent(f"{action}: HTTP {code}", command_status=ESME_RSYSERR, http_status=code)

    def _error(self, code: str, description: str, action: str, http_status: int) -> ProviderError:
        kind, status, err = ERROR_TABLE.get(code, (Permanent, ESME_RSYSERR, "100"))
        if http_status in (401, 403):
            kind = Misconfigured
        status = self._overrides.get(code, status)
        # The description is the provider's free text: never let it carry our key into a log.
        description = description.replace(self._key, "<key>")[:200] if self._key else description[:200]
        detail = f"{action}: {code} (HTTP {http_status})" + (f": {description}" if description else "")
        if kind is Misconfigured:
            log.error("smsfly %s: API key refused: %s", self.name, detail)
        return kind(detail, command_status=status, err=err, http_status=http_status)


def _channels(settings: ProviderSettings, value: str | list) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    channels = tuple(str(c).strip().lower() for c in items if str(c).strip())
    if not channels or any(c not in CHANNELS for c in channels) or len(set(channels)) != len(channels):
        raise settings.error("channels", f'"sms", "viber" or "viber,sms", got {value!r}')
    return channels


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _money(value: Any) -> float:
    """SMS-fly sends amounts as strings ("91.477") or numbers (0.475)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"not an amount: {type(value).__name__}")
    return float(value)


def _offset(text: str) -> Any:
    try:
        return datetime.strptime(text, "%z").tzinfo
    except ValueError:
        return None


def _date(value: Any, tz: Any) -> datetime | None:
    """Status dates are "2021-12-17 10:36:12", with no offset [S001]."""
    text = str(value or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz or UTC)).astimezone(UTC)
    return None
