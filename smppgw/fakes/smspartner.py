"""Fake SMS Partner (api.smspartner.fr/v1), written from shared/providers/smspartner.md.

Routes: GET /v1/me, POST /v1/send, GET /v1/message-status, POST /v1/multi-status,
GET /v1/bulk-status, GET /v1/message-cancel; each checks `apiKey` (code 1 missing, 10 wrong)
and answers refusals as `{"success": false, "code": N, "message"|"errors": …}` with HTTP
`error_http_status` (default 200: the docs give none but the 400 for bad JSON).

Outcomes by number suffix (fakes.base.outcome_for): …0001 gets code 9 with a
`children[phoneNumbers].data` error naming the last six digits, as in the docs' sample;
…0004 makes the whole request 429, …0005 a 503; the rest are accepted under one integer
`message_id` and read "Waiting" until `delay` seconds on the fake's clock, then "Delivered"
or "Not delivered". The API has only those three words, so …0006 (expired) and …0007
(rejected) also end "Not delivered" (`final_words` changes that); …0003 stays "Waiting".

Quirks kept: message-status answers `statut` and the number in national form (06…) with a
string messageId; multi-status and bulk-status answer `status`, unix-second dates, integer
messageIds. `no_balance` zeroes /v1/me and refuses sends with code 11.

Webhooks [INF, undocumented]: when a message turns final, a JSON POST to its request's
`urlDlr` (or `webhookUrl`, or the fake's `webhook_url`):
`{"messageId", "phoneNumber", "status", "date", "stopSms"}`. `add_reply` posts the documented
short-number reply JSON, or with `to=` the long-number payload (optionally in concat parts,
optionally form-encoded), to `reply_url`. Non-2xx answers are retried by the base class.
Cancelled messages are no longer found (code 4) [INF].
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from smppgw.fakes.base import FakeClock, FakeMessage, FakeProvider, Outcome, Recorded, Reply, outcome_for

COUNTRY = "33"  # national numbers (0…) are French


def _digits(number: str) -> str:
    raw = str(number).strip()
    digits = re.sub(r"\D", "", raw)
    if not raw.startswith("+") and digits.startswith("00"):
        return digits[2:]
    if not raw.startswith("+") and digits.startswith("0"):
        return COUNTRY + digits[1:]
    return digits


def _national(digits: str) -> str:
    return "0" + digits[len(COUNTRY) :] if digits.startswith(COUNTRY) else "+" + digits


class FakeSmsPartner(FakeProvider):
    type = "smspartner"
    routes = [
        ("GET", r"/v1/me", "_me"),
        ("POST", r"/v1/send", "_send"),
        ("GET", r"/v1/message-status", "_message_status"),
        ("POST", r"/v1/multi-status", "_multi_status"),
        ("GET", r"/v1/bulk-status", "_bulk_status"),
        ("GET", r"/v1/message-cancel", "_cancel"),
    ]
    waiting_word = "Waiting"
    final_words = {
        Outcome.DELIVERED: "Delivered",
        Outcome.UNDELIVERED: "Not delivered",
        Outcome.EXPIRED: "Not delivered",
        Outcome.REJECTED: "Not delivered",
    }

    def __init__(
        self,
        *,
        api_key: str = "test-api-key",
        reply_url: str | None = None,
        error_http_status: int = 200,
        timezone: str = "Europe/Paris",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.reply_url = reply_url
        self.error_http_status = error_http_status
        self.tz = ZoneInfo(timezone)
        self._mid = 300
        self._mid_lock = threading.Lock()

    @classmethod
    def from_options(cls, port: int, options: dict[str, Any]) -> FakeSmsPartner:
        """Build (not start) a fake from CLI/config options: api_key, delay, webhook_url,
        reply_url, rate_limit, error_http_status, host, manual_clock."""
        return cls(
            host=str(options.get("host", "127.0.0.1")),
            port=port,
            clock=FakeClock(manual=bool(options.get("manual_clock", False))),
            delay=float(options.get("delay", 1.0)),
            webhook_url=options.get("webhook_url"),
            rate_limit=float(options["rate_limit"]) if options.get("rate_limit") else None,
            api_key=str(options.get("api_key", "test-api-key")),
            reply_url=options.get("reply_url"),
            error_http_status=int(options.get("error_http_status", 200)),
        )

    # -- helpers ----------------------------------------------------------------------------

    def _error(self, code: int, message: str = "", errors: list[dict[str, str]] | None = None) -> Reply:
        body: dict[str, Any] = {"success": False, "code": code}
        if errors is not None:
            body["errors"] = errors
        else:
            body["message"] = message
        return Reply(self.error_http_status, body)

    def _refuse_key(self, key: Any) -> Reply | None:
        if not key:
            return self._error(1, "API key is required")
        if key != self.api_key:
            return self._error(10, "Invalid API key")
        return None

    def _next_mid(self) -> int:
        with self._mid_lock:
            self._mid += 1
            return self._mid

    def _local(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def _state(self, msg: FakeMessage) -> tuple[str, float]:
        """(status word, date) of a message now."""
        if self.is_final(msg):
            return self.final_words.get(msg.outcome, "Delivered"), msg.created_at + self.delay
        return self.waiting_word, msg.created_at

    def _find(self, mid: Any, phone: Any) -> FakeMessage | None:
        with self._lock:
            msg = self.messages.get(f"{str(mid).strip()}:{_digits(str(phone or ''))}")
        return None if msg is None or msg.extra.get("cancelled") else msg

    def _json(self, rec: Recorded) -> dict[str, Any] | None:
        try:
            body = rec.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # -- routes ------------------------------------------------------------------------------

    def _me(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        if refused := self._refuse_key(rec.query.get("apiKey", [""])[-1]):
            return refused
        sms, solde = (0, "0.000") if self.no_balance else (269082, "10225.119")
        return Reply(
            200,
            {
                "success": True,
                "code": 200,
                "user": {"username": "exemple@email.com", "firstname": "John", "lastname": "Doe"},
                "credits": {
                    "creditSms": sms,
                    "creditSmsLowCost": 0 if self.no_balance else 444570,
                    "creditHlr": 2045023,
                    "toSend": 0,
                    "solde": solde,
                    "currency": "EUR",
                    "balance": solde,
                },
            },
        )

    def _send(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        body = self._json(rec)
        if body is None:  # what the API does with an unescaped quote
            return Reply(400, {"success": False, "code": 400, "message": "Invalid JSON"})
        if refused := self._refuse_key(body.get("apiKey")):
            return refused
        if not body.get("phoneNumbers"):
            return self._error(2, "phoneNumbers is required")
        numbers = [n.strip() for n in str(body["phoneNumbers"]).split(",") if n.strip()]
        outcomes = {outcome_for(n) for n in numbers}
        if Outcome.THROTTLED in outcomes:
            busy = {"success": False, "code": 429, "message": "Too many requests"}
            return Reply(429, busy, {"Retry-After": "2"})
        if Outcome.SERVER_ERROR in outcomes:
            return Reply(503, "Service Unavailable")
        problems: list[tuple[str, str]] = []
        text, sender = str(body.get("message") or ""), str(body.get("sender") or "")
        if not text:
            problems.append(("message", "This value should not be blank."))
        if len(numbers) > 500:
            problems.append(("phoneNumbers", "500 numbers at most per request."))
        if sender and not re.fullmatch(r"[A-Za-z0-9 ]{3,11}", sender):
            problems.append(("sender", "The sender must have 3 to 11 characters, no special characters."))
        scheduled, problem = self._schedule(body)
        if problem:
            problems.append(problem)
        problems += [
            ("phoneNumbers", f"This phone number is not valid ({_digits(n)[-6:]})")
            for n in numbers
            if outcome_for(n) is Outcome.INVALID_NUMBER
        ]
        if problems:
            errors = [{"elementId": f"children[{f}].data", "message": m} for f, m in problems]
            return self._error(9, errors=errors)
        if self.no_balance:
            return self._error(11, "Insufficient credit")
        mid = self._next_mid()
        dlr = body.get("urlDlr") or body.get("webhookUrl") or self.webhook_url
        for n in numbers:
            msg = self.accept(
                _digits(n),
                text,
                sender,
                provider_id=f"{mid}:{_digits(n)}",
                message_id=mid,
                url_dlr=dlr,
                scheduled_at=scheduled,
            )
            if scheduled:
                msg.created_at = max(msg.created_at, scheduled)  # statuses start at the send time
        per_sms = 70 if body.get("isUnicode") == 1 else 160
        nb_sms = len(numbers) * max(1, -(-len(text) // per_sms))
        return Reply(
            200,
            {
                "success": True,
                "code": 200,
                "message_id": mid,
                "nb_sms": nb_sms,
                "cost": round(0.045 * nb_sms, 3),
                "currency": "EUR",
            },
        )

    def _schedule(self, body: dict[str, Any]) -> tuple[float | None, tuple[str, str] | None]:
        date = body.get("scheduledDeliveryDate")
        if not date:
            return None, None
        hour, minute = body.get("time"), body.get("minute")
        if (
            not isinstance(hour, int)
            or not isinstance(minute, int)
            or not 0 <= hour <= 23
            or minute not in range(0, 60, 5)
        ):
            return None, ("minute", "time 0-24 and minute 0-55 in 5-minute steps are required with a date.")
        try:
            day = datetime.strptime(str(date), "%d/%m/%Y")
        except ValueError:
            return None, ("scheduledDeliveryDate", "The date must be dd/MM/yyyy.")
        return day.replace(hour=hour, minute=minute, tzinfo=self.tz).timestamp(), None

    def _message_status(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        q = {k: v[-1] for k, v in rec.query.items()}
        if refused := self._refuse_key(q.get("apiKey")):
            return refused
        if not q.get("messageId"):
            return self._error(3, "Message ID is required")
        if not q.get("phoneNumber"):
            return self._error(2, "Phone number is required")
        msg = self._find(q["messageId"], q["phoneNumber"])
        if msg is None:
            return self._error(4, "Message not found")
        word, ts = self._state(msg)
        return Reply(
            200,
            {
                "success": True,
                "code": 200,
                "number": _national(msg.destination),
                "messageId": str(msg.extra["message_id"]),
                "stopSms": False,
                "date": self._local(ts),
                "statut": word,
                "cost": 0.045,
                "countryCode": "FR",
                "currency": "EUR",
            },
        )

    def _multi_status(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        body = self._json(rec)
        if body is None:
            return Reply(400, {"success": False, "code": 400, "message": "Invalid JSON"})
        if refused := self._refuse_key(body.get("apiKey")):
            return refused
        wanted = body.get("SMSStatut_List")
        if not isinstance(wanted, list) or not wanted or len(wanted) > 500:
            return self._error(
                9,
                errors=[
                    {
                        "elementId": "children[SMSStatut_List].data",
                        "message": "1 to 500 {phoneNumber, messageId} entries.",
                    }
                ],
            )
        answers = []
        for item in wanted:
            item = item if isinstance(item, dict) else {}
            msg = self._find(item.get("messageId"), item.get("phoneNumber"))
            head = {"phoneNumber": item.get("phoneNumber"), "messageId": item.get("messageId")}
            if msg is None:
                answers.append({"success": False, "code": 4, **head, "status": "Numéro introuvable"})
                continue
            word, ts = self._state(msg)
            answers.append(
                {
                    "success": True,
                    "code": 200,
                    "phoneNumber": "+" + msg.destination,
                    "messageId": msg.extra["message_id"],
                    "status": word,
                    "date": str(int(ts)),
                    "stopSms": "0",
                    "isSpam": "0",
                }
            )
        return Reply(200, {"success": True, "code": 200, "StatutResponse_List": answers})

    def _bulk_status(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        q = {k: v[-1] for k, v in rec.query.items()}
        if refused := self._refuse_key(q.get("apiKey")):
            return refused
        with self._lock:
            msgs = [
                m
                for m in self.messages.values()
                if str(m.extra["message_id"]) == q.get("messageId") and not m.extra.get("cancelled")
            ]
        if not msgs:
            return self._error(4, "Message not found")
        rows = [
            {"phoneNumber": "+" + m.destination, "status": w, "stopSMS": False, "date": str(int(t))}
            for m in msgs
            for w, t in [self._state(m)]
        ]
        return Reply(
            200, {"success": True, "code": 200, "message_id": q["messageId"], "StatutResponse_List": rows}
        )

    def _cancel(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        q = {k: v[-1] for k, v in rec.query.items()}
        if refused := self._refuse_key(q.get("apiKey")):
            return refused
        now = self.clock.now()
        with self._lock:
            msgs = [m for m in self.messages.values() if str(m.extra["message_id"]) == q.get("messageId")]
            if not msgs:
                return self._error(4, "Message not found")
            if any(m.extra.get("cancelled") for m in msgs):
                return self._error(5, "The SMS sending has already been canceled.")
            at = msgs[0].extra.get("scheduled_at")
            if at is None or at <= now:
                return self._error(7, "The SMS has already been sent.")
            if at - now < 300:
                return self._error(6, "Too late: less than 5 minutes before the send time.")
            for m in msgs:
                m.extra["cancelled"] = True
        return Reply(200, {"success": True, "code": 200, "message": "The SMS sending has been canceled."})

    # -- webhooks ----------------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        with self._lock:
            due = [
                m
                for m in self.messages.values()
                if m.extra.get("url_dlr")
                and not m.extra.get("dlr_sent")
                and not m.extra.get("cancelled")
                and m.is_final_at(now, self.delay)
            ]
            for m in due:
                m.extra["dlr_sent"] = True
        for m in due:
            word, ts = self._state(m)
            self.emit_webhook(
                m.extra["url_dlr"],
                {
                    "messageId": m.extra["message_id"],
                    "phoneNumber": "+" + m.destination,
                    "status": word,
                    "date": self._local(ts),
                    "stopSms": False,
                },
            )

    def add_reply(
        self,
        phone_number: str,
        text: str,
        *,
        message_id: int | None = None,
        kind: str = "response",
        to: str | None = None,
        parts: int = 1,
        form: bool = False,
        url: str | None = None,
    ) -> list[dict[str, Any]]:
        """Post an MO reply to `url` or `reply_url`; returns the payloads queued.

        Without `to`: the short-number JSON `{"type", "phone_number", "text", "message_id"}`
        (`kind="stop"` for a STOP). With `to`: the long-number payload, split in `parts`
        concatenated parts, form-encoded when `form` (the docs leave the encoding open).
        """
        target = url or self.reply_url
        if not target:
            raise ValueError("no reply URL: pass url= or configure reply_url")
        if to is None:
            answered = message_id if message_id is not None else self._next_mid()
            payload: dict[str, Any] = {
                "type": kind,
                "phone_number": phone_number,
                "text": text,
                "message_id": answered,
            }
            self.emit_webhook(target, payload)
            return [payload]
        size = -(-len(text) // parts)
        pieces = [text[i * size : (i + 1) * size] for i in range(parts)]
        stamp = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%Y-%m-%d %H:%M:%S")
        ref = self.new_id()
        payloads = []
        for n, piece in enumerate(pieces, 1):
            payload = {
                "msisdn": _digits(phone_number),
                "to": _digits(to),
                "messageId": self.new_id(),
                "text": piece,
                "type": "text",
                "keyword": (text.split() or [""])[0].upper(),
                "message-timestamp": stamp,
            }
            if parts > 1:
                payload.update(
                    {"concat": "true", "concat-ref": ref, "concat-total": str(parts), "concat-part": str(n)}
                )
            if form:
                self.emit_webhook(target, urlencode(payload), "application/x-www-form-urlencoded")
            else:
                self.emit_webhook(target, payload)
            payloads.append(payload)
        return payloads
