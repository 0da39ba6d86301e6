"""SMS Partner adapter (spec: shared/providers/smspartner.md, seed 004; api.smspartner.fr/v1).

Owns the /v1/send, /v1/message-status, /v1/multi-status, /v1/message-cancel and /v1/me calls,
SMS Partner's answer shapes and control codes, the one status table, and the reading of its
DLR and reply webhooks. The account `apiKey` travels in JSON bodies and query strings, so no
URL or body ever goes into an error, a log line or a repr.

Choices nothing published backs ([INF] in the spec), with the option that changes each:

* One `message_id` covers a whole send request and statuses are keyed by (messageId,
  phoneNumber), so a provider id is `"<messageId>:<digits>"`; `poll` and webhooks rebuild it.
* `phoneNumbers` is a comma-separated string of `+<digits>`; answers in national form
  (`06…`) are read with `default_country_code` (default "33").
* Messages sharing text, sender, coding and schedule slot share a request (≤ `batch_size`,
  default and maximum 500); a number twice in one group goes into another request so its two
  ids differ. Scheduled messages go one per request (`schedule_one_per_request`, default
  true) because message-cancel cancels a whole request.
* `schedule_at` becomes `scheduledDeliveryDate` dd/MM/yyyy + `time` + `minute` in `timezone`
  (default "Europe/Paris", the docs name none), rounded *up* to the 5-minute slot; a slot
  already past is sent at once. The same zone reads zone-less status dates.
* `escape_text` (default true): newlines become `:br:` and `€` becomes `:euro:`.
* `dlr_url` is sent as `urlDlr` (`dlr_url_field` = "webhookUrl" follows the code samples);
  `reply_url` as `urlResponse`. `gamme`, `tag`, `sandbox`, `stop_sms` pass through.
* Success is `success: true` (or code 200); HTTP status on refusals is unspecified, so the
  JSON code decides. Codes → SMPP per the spec's table; `no_credit_status` (default 0x45)
  for code 11, `error_codes` (code → command_status) overrides any row but code 9's fields
  (elementId → 0x0B/0x0A/0x01/0x61). Unknown codes → 0x45.
* Code 9 on phoneNumbers, 13 and 14 may concern one number of many: the numbers the error
  text names (its digit runs match a number's end) are retried alone and the rest together;
  when it names none, the request is split in halves until the bad numbers stand alone.
* A 2xx send answer that is not JSON is Permanent RSYSERR: the messages may have gone out.
* Status words match case-insensitively, French labels of the same page too; an unknown word
  gives `unknown_status` (default "ENROUTE", leaving the message to the status horizon).
* DLR webhook (undocumented): JSON or form with messageId/message_id, phoneNumber/number,
  status/statut, date, as the fake proposes. Replies: the documented short-number JSON
  (`reply_destination` names our side, default ""; a `type: stop` reply is an MO "STOP") and
  the long-number payload, JSON or form, its `message-timestamp` read as UTC and `concat`
  parts reassembled in memory before it is returned.
* Balance: `credits.balance` (or `solde`) in `credits.currency`, then `creditSms` as "SMS".
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qs

from smppgw.config import ProviderSettings
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVSCHED,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    FINAL_STATES,
    STAT_WORDS,
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

DEFAULT_URL = "https://api.smspartner.fr"
MAX_NUMBERS = 500  # per send and per multi-status request
ESME_RINVMSGID, ESME_RCANCELFAIL = 0x0C, 0x11
MAX_PENDING_PARTS = 1000  # concatenated replies waiting for their other parts

# Every status word (single-status page, EN and FR labels) → (message_state, receipt err:).
STATUS_TABLE: dict[str, tuple[int, str]] = {
    "waiting": (ENROUTE, "000"),
    "en attente": (ENROUTE, "000"),
    "delivered": (DELIVERED, "000"),
    "livré": (DELIVERED, "000"),
    "not delivered": (UNDELIVERABLE, "001"),
    "non livré": (UNDELIVERABLE, "001"),
}

# Control code → (error class, command_status); SMPP column of the spec's table [INF].
ERROR_TABLE: dict[int, tuple[type[ProviderError], int]] = {
    1: (Misconfigured, ESME_RSYSERR),
    2: (Permanent, ESME_RINVDSTADR),
    3: (Permanent, ESME_RSYSERR),
    4: (Permanent, ESME_RINVMSGID),
    5: (Permanent, ESME_RCANCELFAIL),
    6: (Permanent, ESME_RCANCELFAIL),
    7: (Permanent, ESME_RCANCELFAIL),
    10: (Misconfigured, ESME_RSYSERR),
    11: (Permanent, ESME_RSUBMITFAIL),
    13: (Permanent, ESME_RINVDSTADR),
    14: (Permanent, ESME_RSUBMITFAIL),
    15: (Permanent, ESME_RSUBMITFAIL),
    20: (Misconfigured, ESME_RSYSERR),
    22: (Permanent, ESME_RINVSCHED),
    23: (Permanent, ESME_RINVSCHED),
    30: (Misconfigured, ESME_RSYSERR),
}
# Code 9 names the refused fields in errors[].elementId, e.g. "children[phoneNumbers].data".
FIELD_TABLE = {
    "phoneNumbers": ESME_RINVDSTADR,
    "sender": ESME_RINVSRCADR,
    "message": ESME_RINVMSGLEN,
    "scheduledDeliveryDate": ESME_RINVSCHED,
    "time": ESME_RINVSCHED,
    "minute": ESME_RINVSCHED,
}


class NumberRefused(Permanent):
    """A refusal that may concern only some numbers of the request; `hints` are digit runs
    from the provider's text, matched against the end of each number."""

    def __init__(self, detail: str, hints: Sequence[str], **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.hints = tuple(hints)


class SmsPartner:
    type = "smspartner"

    def __init__(self, settings: ProviderSettings) -> None:
        self.name = settings.name
        self._key: str = settings.get("api_key", str, secret=True)
        if not self._key.strip():
            raise settings.error("api_key", "a non-empty string")
        self._url = (settings.url or DEFAULT_URL).rstrip("/").removesuffix("/v1")
        self._tz = settings.zone("timezone", "Europe/Paris")
        self._country = settings.get("default_country_code", str, "33").lstrip("+")
        self._escape = settings.get("escape_text", bool, True)
        self._scheduled_alone = settings.get("schedule_one_per_request", bool, True)
        self._reply_destination = settings.get("reply_destination", str, "")
        self._codes = {code: (cls, status) for code, (cls, status) in ERROR_TABLE.items()}
        self._codes[11] = (Permanent, settings.get("no_credit_status", int, ESME_RSUBMITFAIL))
        for code, status in settings.get("error_codes", dict, {}).items():
            if not str(code).isdigit() or isinstance(status, bool) or not isinstance(status, int):
                raise settings.error(f"error_codes.{code}", "an integer command_status for a numeric code")
            self._codes[int(code)] = (self._codes.get(int(code), (Permanent, 0))[0], status)
        states = {w: s for s, w in STAT_WORDS.items()}
        unknown = settings.get("unknown_status", str, "ENROUTE").upper()
        if unknown not in states:
            raise settings.error("unknown_status", f"one of {', '.join(sorted(states))}")
        self._unknown_state = states[unknown]
        self._fixed = self._fixed_fields(settings)
        batch = settings.get("batch_size", int, MAX_NUMBERS)
        if not 1 <= batch <= MAX_NUMBERS:
            raise settings.error("batch_size", f"an integer from 1 to {MAX_NUMBERS}")
        self.limits = ProviderLimits(
            batch_size=batch,
            poll_batch_size=MAX_NUMBERS,
            max_concurrency=settings.get("max_concurrency", int, 4),
        )
        self.capabilities = Capabilities(
            poll=True,
            webhooks=True,
            inbound_webhook=True,
            balance=True,
            cancel=True,
            schedule=True,
            unicode_flag=True,
        )
        self._parts: dict[tuple[str, str], dict[int, str]] = {}
        # httpx logs every request URL at INFO; GET URLs carry the key, so scrub them.
        self._redact = _Redact(self._key)
        logging.getLogger("httpx").addFilter(self._redact)
        self._client = make_client(replace(settings, url=self._url))
        self.pacer = self._client.pacer  # every request; its rate is set by the gateway

    def __repr__(self) -> str:  # explicit, so the key is never printed
        return f"SmsPartner(name={self.name!r}, url={self._url!r})"

    @staticmethod
    def _fixed_fields(settings: ProviderSettings) -> dict[str, Any]:
        fixed: dict[str, Any] = {}
        if dlr := settings.get("dlr_url", str, ""):
            fixed[settings.get("dlr_url_field", str, "urlDlr")] = dlr
        if reply := settings.get("reply_url", str, ""):
            fixed["urlResponse"] = reply
        if gamme := settings.get("gamme", int, 0):
            if gamme not in (1, 2):
                raise settings.error("gamme", "1 (Premium) or 2 (Low Cost)")
            fixed["gamme"] = gamme
        if tag := settings.get("tag", str, ""):
            fixed["tag"] = tag
        if settings.get("sandbox", bool, False):
            fixed["sandbox"] = 1
        if settings.get("stop_sms", bool, False):
            fixed["isStopSms"] = 1
        return fixed

    # -- sending ------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        slots = [self._slot(sms.schedule_at) for sms in batch]
        results: list[SendResult | None] = [None] * len(batch)
        stop: ProviderError | None = None
        for chunk in self._chunks(batch, slots):
            error = stop
            if error is None:
                try:
                    await self._send_chunk(batch, slots, chunk, results)
                    continue
                except ProviderError as e:
                    error = e
                    if e.retryable or isinstance(e, Misconfigured):
                        stop = e  # a dead key or an overloaded provider fails the next requests too
            for i in chunk:
                results[i] = SendResult(batch[i].message_id, error=error)
        done = [r for r in results if r is not None]
        if done and len({id(r.error) for r in done}) == 1 and done[0].error is not None:
            raise done[0].error  # one failure for every message: the whole call failed
        return done

    def _chunks(self, batch: Sequence[OutboundSms], slots: list[Any]) -> list[list[int]]:
        groups: dict[tuple[Any, ...], list[tuple[list[int], set[str]]]] = {}
        for i, sms in enumerate(batch):
            limit = 1 if slots[i] and self._scheduled_alone else self.limits.batch_size
            chunks = groups.setdefault((sms.text, sms.source, sms.unicode, slots[i]), [])
            number = self._digits(sms.destination)
            for idx, numbers in chunks:
                if len(idx) < limit and number not in numbers:
                    break
            else:
                idx, numbers = [], set()
                chunks.append((idx, numbers))
            idx.append(i)
            numbers.add(number)
        return [idx for chunks in groups.values() for idx, _ in chunks]

    async def _send_chunk(
        self, batch: Sequence[OutboundSms], slots: list[Any], idx: list[int], results: list[SendResult | None]
    ) -> None:
        sms = batch[idx[0]]
        numbers = [self._digits(batch[i].destination) for i in idx]
        body: dict[str, Any] = {
            "apiKey": self._key,
            "phoneNumbers": ",".join("+" + n for n in numbers),
            "message": self._text(sms.text),
        }
        if sms.source:
            body["sender"] = sms.source
        if sms.unicode:
            body["isUnicode"] = 1
        if slots[idx[0]]:
            body["scheduledDeliveryDate"], body["time"], body["minute"] = slots[idx[0]]
        body.update(self._fixed)
        try:
            data = await self._call("POST", "/v1/send", body=body, sent=True)
        except NumberRefused as e:
            if len(idx) == 1:
                raise
            suspects = [i for i, n in zip(idx, numbers, strict=True) if any(n.endswith(h) for h in e.hints)]
            rest = [i for i in idx if i not in suspects]
            parts = (
                [rest, *([i] for i in suspects)]
                if suspects and rest
                else [idx[: len(idx) // 2], idx[len(idx) // 2 :]]
            )
            for part in parts:
                try:
                    await self._send_chunk(batch, slots, part, results)
                except ProviderError as e2:
                    for i in part:
                        results[i] = SendResult(batch[i].message_id, error=e2)
            return
        mid = _id_str(data.get("message_id"))  # an integer for the whole request
        # Without an id nothing can be tracked, and a retry would send the messages twice.
        missing = None if mid else Permanent("/v1/send: success without message_id")
        for i, number in zip(idx, numbers, strict=True):
            results[i] = SendResult(
                batch[i].message_id,
                provider_id=f"{mid}:{number}" if mid else None,
                error=missing,
                state=ENROUTE,
                provider_status="accepted",
            )

    def _slot(self, at: datetime | None) -> tuple[str, int, int] | None:
        if at is None:
            return None
        local = at.astimezone(self._tz)
        floor = local.replace(minute=local.minute - local.minute % 5, second=0, microsecond=0)
        slot = floor if floor == local else floor + timedelta(minutes=5)  # never before schedule_at
        if slot <= datetime.now(UTC):
            return None
        return slot.strftime("%d/%m/%Y"), slot.hour, slot.minute

    def _text(self, text: str) -> str:
        if not self._escape:
            return text
        return text.replace("\r\n", "\n").replace("\n", ":br:").replace("€", ":euro:")

    # -- status ---------------------------------------------------------------------------------

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        wanted: dict[tuple[str, str], str] = {}
        for pid in provider_ids:
            mid, _, number = pid.partition(":")
            if mid and number:
                wanted[(mid, number)] = pid
            else:
                log.warning("event=smspartner_bad_provider_id provider=%s id=%r", self.name, pid)
        if len(wanted) == 1:
            (mid, number), pid = next(iter(wanted.items()))
            query = {"apiKey": self._key, "messageId": mid, "phoneNumber": "+" + number}
            data = await self._call("GET", "/v1/message-status", params=query, accept=(4,))
            return [] if _code(data) == 4 else [self._report(pid, data, number)]
        reports: list[StatusReport] = []
        keys = list(wanted)
        for n in range(0, len(keys), MAX_NUMBERS):
            status_list = [
                {"phoneNumber": "+" + number, "messageId": int(mid) if mid.isdigit() else mid}
                for mid, number in keys[n : n + MAX_NUMBERS]
            ]
            # SMSStatut_List, as every sample spells it (one table says SMSStatus_List).
            body = {"apiKey": self._key, "SMSStatut_List": status_list}
            data = await self._call("POST", "/v1/multi-status", body=body, accept=(4,))
            if _code(data) == 4:
                continue
            for entry in data.get("StatutResponse_List") or data.get("StatusResponse_List") or []:
                if not isinstance(entry, dict) or entry.get("success") is False:
                    continue  # code 4 "Numéro introuvable": left out
                number = self._digits(str(entry.get("phoneNumber") or entry.get("number") or ""))
                pid = wanted.get((_id_str(entry.get("messageId")) or "", number))
                if pid is not None:
                    reports.append(self._report(pid, entry, number))
        return reports

    def _report(self, pid: str, entry: dict[str, Any], number: str) -> StatusReport:
        word = str(entry.get("statut", entry.get("status")) or "").strip()
        state, err = STATUS_TABLE.get(word.lower(), (self._unknown_state, "000"))
        if word.lower() not in STATUS_TABLE:
            log.warning("event=smspartner_unknown_status provider=%s id=%s status=%r", self.name, pid, word)
        if _truthy(entry.get("stopSms", entry.get("stopSMS"))):
            log.info("event=smspartner_stop_sms provider=%s id=%s", self.name, pid)
        done = _parse_date(entry.get("date"), self._tz) if state in FINAL_STATES else None
        return StatusReport(pid, state, word, err, done, destination=number)

    # -- webhooks -------------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        out: list[StatusReport | Inbound] = []
        for item in _payloads(request):
            if "status" in item or "statut" in item:
                mid = _id_str(item.get("messageId", item.get("message_id")))
                phone = item.get("phoneNumber") or item.get("number") or item.get("phone_number")
                if not mid or not phone:
                    raise ValueError("SMS Partner DLR without messageId or phoneNumber")
                number = self._digits(str(phone))
                out.append(self._report(f"{mid}:{number}", item, number))
            elif "msisdn" in item:
                inbound = self._long_reply(item)
                if inbound is not None:
                    out.append(inbound)
            elif "phone_number" in item:
                out.append(self._short_reply(item))
            else:
                raise ValueError(f"SMS Partner webhook: neither a DLR nor a reply (keys {sorted(item)[:10]})")
        return out

    def _short_reply(self, item: dict[str, Any]) -> Inbound:
        stop = str(item.get("type") or "").lower() == "stop"
        text = item.get("text")
        text = "STOP" if stop and not text else text
        if not isinstance(text, str):
            raise ValueError("SMS Partner reply without text")
        source = self._digits(str(item.get("phone_number") or ""))
        if not source:
            raise ValueError("SMS Partner reply without phone_number")
        if stop:
            log.info("event=smspartner_stop_reply provider=%s", self.name)
        # No reply id is documented: the answered message, the number and the text identify it.
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        pid = f"reply:{_id_str(item.get('message_id')) or ''}:{source}:{digest}"
        return Inbound(source, self._reply_destination, text, pid)

    def _long_reply(self, item: dict[str, Any]) -> Inbound | None:
        source = self._digits(str(item["msisdn"] or ""))
        if not source:
            raise ValueError("SMS Partner reply without msisdn")
        destination = self._digits(str(item.get("to") or "")) or self._reply_destination
        text, pid = str(item.get("text") or ""), _id_str(item.get("messageId")) or ""
        if _truthy(item.get("concat")):
            ref = str(item.get("concat-ref"))
            total, part = _int(item.get("concat-total")), _int(item.get("concat-part"))
            if not total or not part or not 1 <= part <= total:
                raise ValueError("SMS Partner reply with a bad concat part")
            parts = self._parts.setdefault((source, ref), {})
            parts[part] = text
            if len(parts) < total:
                while len(self._parts) > MAX_PENDING_PARTS:
                    del self._parts[next(iter(self._parts))]  # the oldest never completed
                return None
            del self._parts[(source, ref)]
            text, pid = "".join(parts[n] for n in range(1, total + 1)), f"concat:{source}:{ref}"
        return Inbound(source, destination, text, pid, _parse_date(item.get("message-timestamp"), UTC))

    # -- account --------------------------------------------------------------------------------

    async def balance(self) -> list[Balance]:
        data = await self._call("GET", "/v1/me", params={"apiKey": self._key})
        credits = data.get("credits") if isinstance(data.get("credits"), dict) else {}
        out = []
        if (amount := _float(credits.get("balance", credits.get("solde")))) is not None:
            out.append(Balance(amount, str(credits.get("currency") or "EUR")))
        if (sms := _float(credits.get("creditSms"))) is not None:
            out.append(Balance(sms, "SMS"))
        if not out:
            raise Retryable("/v1/me: no credits in the answer")
        return out

    async def cancel(self, provider_id: str) -> bool:
        """Cancel a scheduled request: every recipient sharing its messageId (see module doc)."""
        mid = provider_id.partition(":")[0]
        data = await self._call(
            "GET", "/v1/message-cancel", params={"apiKey": self._key, "messageId": mid}, accept=(5, 6, 7)
        )
        return _code(data) not in (5, 6, 7)  # already cancelled, too close to the slot, already sent

    async def inbound(self) -> list[Inbound]:
        raise NotSupported("SMS Partner sends replies by webhook only")

    async def senders(self) -> list[str]:
        raise NotSupported("SMS Partner has no sender list (the sender is free text)")

    async def close(self) -> None:
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._redact)

    # -- plumbing -------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        sent: bool = False,
        accept: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """One request; returns a success answer or one whose code is in `accept`, else raises."""
        resp = await request(self._client, method, path, params=params, json=body)
        classify_status(resp)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            what = f"{method} {path}: HTTP {resp.status_code}, not SMS Partner JSON"
            if sent or resp.status_code >= 400:
                raise Permanent(what, command_status=ESME_RSYSERR, http_status=resp.status_code)
            raise Retryable(what, http_status=resp.status_code)
        if _truthy(data.get("success")) or (data.get("success") is None and _code(data) == 200):
            return data
        if _code(data) in accept:
            return data
        raise self._refusal(data, f"{method} {path}", resp.status_code)

    def _refusal(self, data: dict[str, Any], what: str, http_status: int) -> ProviderError:
        code = _code(data)
        detail = f"{what}: code {code}: {data.get('message') or ''}"
        err = f"{code:03d}" if code is not None and 0 <= code < 1000 else "000"
        errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
        fields = [(_field(e.get("elementId")), str(e.get("message") or "")) for e in errors]
        detail = self._scrub(detail + "".join(f"; {f}: {m}" for f, m in fields))
        if code in (9, 13, 14) and (code != 9 or (fields and all(f == "phoneNumbers" for f, _ in fields))):
            hints = re.findall(r"\d{4,}", " ".join(m for _, m in fields) or str(data.get("message") or ""))
            status = ESME_RINVDSTADR if code == 9 else self._codes[code][1]
            return NumberRefused(detail, hints, command_status=status, err=err, http_status=http_status)
        if code == 9:
            status = next((FIELD_TABLE[f] for f, _ in fields if f in FIELD_TABLE), ESME_RSYSERR)
            return Permanent(detail, command_status=status, err=err, http_status=http_status)
        cls, status = self._codes.get(code or 0, (Permanent, ESME_RSUBMITFAIL))
        return cls(detail, command_status=status, err=err, http_status=http_status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "<hidden>")

    def _digits(self, number: str) -> str:
        raw = number.strip()
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("+"):
            return digits
        if digits.startswith("00"):
            return digits[2:]
        if digits.startswith("0") and self._country:
            return self._country + digits[1:]  # national form, as message-status answers
        return digits


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not a reason to fail a request
            return True
        if self._secret in message:
            record.msg, record.args = message.replace(self._secret, "<hidden>"), None
        return True


def _payloads(request: WebhookRequest) -> list[dict[str, Any]]:
    body = request.body.strip()
    try:
        if not body:
            data: Any = {k: v[-1] for k, v in request.query.items() if v}
        elif "json" in request.headers.get("content-type", "") or body[:1] in (b"{", b"["):
            data = json.loads(body)
        else:
            form = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
            data = {k: v[-1] for k, v in form.items()}
    except (ValueError, UnicodeDecodeError):
        raise ValueError("SMS Partner webhook: body is neither JSON nor a form") from None
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(x, dict) and x for x in items):
        raise ValueError("SMS Partner webhook: no object in the body")
    return items


def _field(element_id: Any) -> str:
    m = re.search(r"\[(\w+)\]", str(element_id or ""))
    return m.group(1) if m else str(element_id or "")


def _code(data: dict[str, Any]) -> int | None:
    return _int(data.get("code"))


def _id_str(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def _int(value: Any) -> int | None:
    try:
        return None if isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes")


def _parse_date(value: Any, tz: tzinfo) -> datetime | None:
    """Unix seconds (multi-status) or "YYYY-MM-DD HH:MM:SS" in `tz` (message-status), as UTC."""
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
