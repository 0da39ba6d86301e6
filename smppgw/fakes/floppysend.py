"""Fake FloppySend (spec: shared/providers/floppysend.md, fakes.md §7): GET/POST /sms and
/balance on loopback, and delivery-report webhooks retried at 1/10/300/900 s.

Reproduces the quirks a client must survive: parameter names in any case (`To`/`to`), every
value a string, a text/plain webhook body. Where the docs are silent the fake follows the
spec's proposals [INF], each switchable:

* failures are HTTP 200 `{"Result":"Failed","Datainfo":[{"Status":"Failed","ID":"",
  "Error_Code":"<n>","Error_Desc":"<text>"}]}` with the codes in `ERRORS`; a bad key is 401;
* one `Datainfo` element per recipient; several recipients are split on `separator` (","), and
  `Result` is "Success" when at least one of them was accepted;
* `Sched` is read as UTC; a scheduled message's delivery delay starts at its `Sched` time;
* DLR body `{"ID","To","Status","Error_Code","Date"}` as JSON, or (`dlr_format`) a form or
  `key:value` lines, always sent as text/plain; MO (`send_inbound`) goes to `inbound_url`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from smppgw.fakes.base import FakeMessage, FakeProvider, Outcome, Recorded, Reply, outcome_for

# (Error_Code, Error_Desc) the fake answers with; the real list is unpublished.
ERRORS = {
    "invalid_number": ("101", "Invalid destination number"),
    "missing": ("102", "Missing parameter: {name}"),
    "dcs": ("103", "Invalid Dcs: use 0 or 8"),
    "sched": ("104", "Invalid Sched date/time"),
    "no_balance": ("105", "Insufficient balance"),
}
# Outcome → (webhook Status word, Error_Code); NEVER_FINAL has no entry: no final webhook.
FINAL_WORDS = {
    Outcome.DELIVERED: ("Delivered", "0"),
    Outcome.UNDELIVERED: ("Undelivered", "201"),
    Outcome.EXPIRED: ("Expired", "202"),
    Outcome.REJECTED: ("Rejected", "203"),
}
_OPTIONS = {
    "api_key",
    "secret_hash",
    "inbound_url",
    "separator",
    "dlr_format",
    "balance",
    "currency",
    "retry_after",
    "host",
    "delay",
    "webhook_url",
    "rate_limit",
}


class FakeFloppySend(FakeProvider):
    type = "floppysend"
    routes = [
        ("GET", "/sms", "handle_sms"),
        ("POST", "/sms", "handle_sms"),
        ("GET", "/balance", "handle_balance"),
        ("POST", "/balance", "handle_balance"),
    ]

    def __init__(
        self,
        *,
        api_key: str = "test-api-key",
        secret_hash: str | None = None,
        inbound_url: str | None = None,
        separator: str = ",",
        dlr_format: str = "json",
        balance: str = "100.00",
        currency: str = "USD",
        retry_after: str = "2",
        **kwargs: Any,
    ) -> None:
        if dlr_format not in ("json", "form", "kv"):
            raise ValueError(f"dlr_format: expected json, form or kv, got {dlr_format!r}")
        super().__init__(**kwargs)
        self.api_key = api_key
        self.secret_hash = secret_hash
        self.inbound_url = inbound_url
        self.separator = separator
        self.dlr_format = dlr_format
        self.balance_amount = balance
        self.currency = currency
        self.retry_after = retry_after
        self._reported: set[str] = set()  # ids whose final webhook is queued

    @classmethod
    def from_options(cls, port: int, options: dict[str, Any]) -> FakeFloppySend:
        """Build from CLI/config options; an unknown key is an error, not silently ignored."""
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ValueError(f"unknown floppysend fake options: {', '.join(sorted(unknown))}")
        return cls(port=port, **options)

    # -- routes -------------------------------------------------------------------------------

    def handle_sms(self, rec: Recorded, _: re.Match[str]) -> Reply:
        if not self._authorized(rec):
            return _unauthorized()
        p = _params(rec)
        for name in ("to", "from", "dcs", "text"):
            if not p.get(name):
                code, desc = ERRORS["missing"]
                return _failed([_failure(code, desc.format(name=name))])
        if p["dcs"] not in ("0", "8"):
            return _failed([_failure(*ERRORS["dcs"])])
        start = self.clock.now()
        if p.get("sched"):
            try:
                sched = datetime.fromisoformat(p["sched"])
            except ValueError:
                return _failed([_failure(*ERRORS["sched"])])
            start = max(start, (sched if sched.tzinfo else sched.replace(tzinfo=UTC)).timestamp())
        numbers = [n.strip().lstrip("+") for n in p["to"].split(self.separator) if n.strip()]
        outcomes = [outcome_for(n) for n in numbers]
        if Outcome.THROTTLED in outcomes:
            return Reply(429, "Too Many Requests", {"Retry-After": self.retry_after})
        if Outcome.SERVER_ERROR in outcomes:
            return Reply(502, "<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        infos = []
        for number, outcome in zip(numbers, outcomes, strict=True):
            if self.no_balance:
                infos.append(_failure(*ERRORS["no_balance"]))
            elif outcome is Outcome.INVALID_NUMBER:
                infos.append(_failure(*ERRORS["invalid_number"]))
            else:
                with self._lock:  # on_tick must not see the message before its start is set
                    msg = self.accept(number, p["text"], p["from"], dcs=p["dcs"], sched=p.get("sched"))
                    msg.created_at = start
                infos.append({"Status": "Sent", "ID": msg.provider_id, "Error_Code": "0", "Error_Desc": "0"})
        ok = any(i["Error_Code"] == "0" for i in infos)
        return Reply(200, {"Result": "Success" if ok else "Failed", "Datainfo": infos})

    def handle_balance(self, rec: Recorded, _: re.Match[str]) -> Reply:
        if not self._authorized(rec):
            return _unauthorized()
        amount = "0.00" if self.no_balance else self.balance_amount
        return Reply(200, {"Result": "Success", "Datainfo": [{"Balance": amount, "Currency": self.currency}]})

    # -- webhooks -----------------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        if not self.webhook_url:
            return
        with self._lock:
            due = [
                m
                for m in self.messages.values()
                if m.provider_id not in self._reported
                and m.outcome in FINAL_WORDS
                and m.is_final_at(now, self.delay)
            ]
            self._reported.update(m.provider_id for m in due)
        for msg in due:
            self.emit_webhook(self.webhook_url, self._encode(self.dlr_fields(msg)), content_type="text/plain")

    def dlr_fields(self, msg: FakeMessage) -> dict[str, str]:
        word, code = FINAL_WORDS[msg.outcome]
        return {
            "ID": msg.provider_id,
            "To": msg.destination,
            "Status": word,
            "Error_Code": code,
            "Date": _iso(msg.created_at + self.delay),
        }

    def send_inbound(self, source: str, destination: str, text: str) -> str:
        """Emit an MO webhook to `inbound_url` (its format is undocumented [INF]); returns its ID."""
        if not self.inbound_url:
            raise ValueError("inbound_url is not set")
        mo_id = self.new_id()
        now = _iso(self.clock.now())
        fields = {"ID": mo_id, "From": source, "To": destination, "Text": text, "Date": now}
        self.emit_webhook(self.inbound_url, self._encode(fields), content_type="text/plain")
        return mo_id

    def _encode(self, fields: dict[str, str]) -> str:
        if self.dlr_format == "form":
            return urlencode(fields)
        if self.dlr_format == "kv":
            return "\n".join(f"{k}:{v}" for k, v in fields.items())
        return json.dumps(fields, ensure_ascii=False)

    def _authorized(self, rec: Recorded) -> bool:
        # Exact match: a key sent with the seed sample's literal quotes is a wrong key.
        if rec.headers.get("x-api-key") != self.api_key:
            return False
        return self.secret_hash is None or rec.headers.get("x-secret-hash") == self.secret_hash


def _params(rec: Recorded) -> dict[str, str]:
    """Query and form parameters, names lower-cased: FloppySend's docs and samples mix cases."""
    pairs = [(k, v) for k, vs in rec.query.items() for v in vs]
    if rec.body and "json" not in rec.headers.get("content-type", ""):
        pairs += parse_qsl(rec.body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k.lower(): v for k, v in pairs}


def _failure(code: str, desc: str) -> dict[str, str]:
    return {"Status": "Failed", "ID": "", "Error_Code": code, "Error_Desc": desc}


def _failed(infos: list[dict[str, str]]) -> Reply:
    return Reply(200, {"Result": "Failed", "Datainfo": infos})


def _unauthorized() -> Reply:
    return Reply(401, {"Result": "Failed", "Message": "Unauthorized: invalid X-api-key or X-Secret-Hash"})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
