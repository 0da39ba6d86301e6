"""Fake SMS-fly: the one JSON action endpoint of REST API v2.04 (../shared/providers/smsfly.md).

Serves POST /api/v2/api.php with SENDMESSAGE, GETMESSAGESTATUS, GETBALANCE, GETBALANCEEXT,
GETSOURCES (and the seed table's GETSOURCE spelling), GETPRICELIST and GETPRICE. Outcomes
follow the recipient's suffix (fakes.base.outcome_for); SMS statuses go ACCEPTD → SENT
(after half the delay) → final (after the delay), on the fake's clock.

Quirks reproduced, because the adapter must cope with them: the send answer's status is
`ACCEPTED` or `ACCEPTD` and its cost a number or a string (alternating by default), errors
come as `{"success":0,"error":{…}}` with HTTP 400/403/422, and 5xx answers are not JSON.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from smppgw.fakes.base import FakeMessage, FakeProvider, Outcome, Recorded, Reply, outcome_for

PATH = "/api/v2/api.php"
TZ = timezone(timedelta(hours=2))  # the seed's dates are +0200
CHANNELS = ("sms", "viber")

DEFAULT_SOURCES = {"sms": ["InfoCenter", "myAlphaName"], "viber": ["Promo", "Taxi"]}
DEFAULT_PRICES = {  # channel → mcc → mnc → price, as GETPRICELIST answers [S001]
    "sms": {"255": {"00": "0.479", "01": "0.478", "03": "0.477", "06": "0.476"}, "260": {"01": "1.900"}},
    "viber": {"255": {"00": "0.750"}},
}

# Final (viber, sms) words per outcome; SMS is REFUND when Viber got through (seed example).
_FINAL = {
    Outcome.DELIVERED: "DELIVRD",
    Outcome.UNDELIVERED: "UNDELIV",
    Outcome.EXPIRED: "EXPIRED",
    Outcome.REJECTED: "STOPED",
}


class FakeSmsFly(FakeProvider):
    type = "smsfly"
    routes = [("POST", re.escape(PATH), "_api")]

    def __init__(
        self,
        *,
        api_key: str = "00000000-fake-smsfly-key-000000000000",
        accepted_word: str = "alternate",  # "ACCEPTED", "ACCEPTD" or "alternate"
        cost_as: str = "alternate",  # "number", "string" or "alternate"
        no_balance_mode: str = "error",  # with no_balance: "error" (INSUFFICIENTFUNDS) or "status"
        server_error_status: int = 502,
        balance: str = "91.477",
        viber_balance: str = "191.477",
        sources: dict[str, list[str]] | None = None,
        prices: dict[str, dict[str, dict[str, str]]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.accepted_word = accepted_word
        self.cost_as = cost_as
        self.no_balance_mode = no_balance_mode
        self.server_error_status = server_error_status
        self.balance_sms = balance
        self.balance_viber = viber_balance
        self.sources = sources if sources is not None else {k: list(v) for k, v in DEFAULT_SOURCES.items()}
        self.prices = prices if prices is not None else json.loads(json.dumps(DEFAULT_PRICES))
        self.message_cost = {"sms": "0.475", "viber": "0.750"}  # the seed's example costs
        self.forced: dict[str, dict[str, str]] = {}  # provider id → {channel: word}, see force_status
        self._sends = itertools.count()

    @classmethod
    def from_options(cls, port: int, options: dict[str, Any]) -> FakeSmsFly:
        """A fake for `smppgw fake-provider smsfly --port N`, not started yet.

        Options: api_key, accepted_word, cost_as, no_balance_mode, server_error_status,
        balance, viber_balance, sources, prices, delay, no_balance, host, rate_limit.
        """
        known = {
            "api_key",
            "accepted_word",
            "cost_as",
            "no_balance_mode",
            "server_error_status",
            "balance",
            "viber_balance",
            "sources",
            "prices",
            "delay",
            "host",
            "rate_limit",
            "webhook_url",
        }
        options = dict(options)
        no_balance = bool(options.pop("no_balance", False))
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown smsfly fake options: {', '.join(sorted(unknown))}")
        fake = cls(port=port, **options)
        fake.no_balance = no_balance
        return fake

    def force_status(self, provider_id: str, **words: str) -> None:
        """Make GETMESSAGESTATUS report these words, e.g. force_status(id, viber="DELIVRD", sms="REFUND")."""
        with self._lock:
            self.forced[provider_id] = dict(words)

    # -- the endpoint -----------------------------------------------------------------------

    def _api(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        try:
            body = json.loads(rec.body)
        except ValueError:
            return self._error(422, "INVREQUEST", "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("data", {}), dict):
            return self._error(400, "INVREQUEST")
        auth = body.get("auth")
        if not isinstance(auth, dict) or auth.get("key") != self.api_key:
            return self._error(403, "FORBIDDEN")
        handler = {
            "SENDMESSAGE": self._send,
            "GETMESSAGESTATUS": self._status,
            "GETBALANCE": self._balance,
            "GETBALANCEEXT": self._balance_ext,
            "GETSOURCES": self._sources,
            "GETSOURCE": self._sources,  # the seed's action table spelling
            "GETPRICELIST": self._pricelist,
            "GETPRICE": self._price,
        }.get(str(body.get("action")))
        if handler is None:
            return self._error(400, "INVACTION")
        return handler(body.get("data") or {})

    def _send(self, data: dict[str, Any]) -> Reply:
        recipient = data.get("recipient")
        if not isinstance(recipient, str) or not re.fullmatch(r"\d{10,15}", recipient):
            return self._error(400, "INVRECIPIENT")
        channels = data.get("channels")
        if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
            return self._error(400, "INVCHANNELS")
        for channel in channels:
            if (refusal := self._check_part(channel, data.get(channel))) is not None:
                return refusal
        outcome = outcome_for(recipient)
        if outcome is Outcome.INVALID_NUMBER:
            return self._error(400, "INVRECIPIENT")
        if outcome is Outcome.THROTTLED:
            return Reply(429, "Too Many Requests", {"Retry-After": "2"})
        if outcome is Outcome.SERVER_ERROR:
            status = self.server_error_status
            return Reply(status, f"<html><body><h1>{status}</h1></body></html>", content_type="text/html")
        if self.no_balance and self.no_balance_mode == "error":
            return self._error(400, "INSUFFICIENTFUNDS")
        n = next(self._sends)
        first = data[channels[0]]
        msg = self.accept(
            recipient,
            first.get("text", ""),
            first["source"],
            provider_id=f"FAPI{0x40A3AFA000000 + n:016X}",
            channels=list(channels),
            ttl=first["ttl"],
            flash=data.get("sms", {}).get("flash", 0),
        )
        word = self._accepted_word(n)
        if self.no_balance:  # no_balance_mode "status": taken, but it will never go out
            word = msg.extra["refused"] = "INSUFFICIENTFUND"
        answer: dict[str, Any] = {"messageID": msg.provider_id}
        for channel in channels:
            cost = "0.000" if word == "INSUFFICIENTFUND" else self.message_cost[channel]
            answer[channel] = {"status": word, "date": self._stamp(), "cost": self._cost(cost, n)}
            if channel == "viber":
                answer[channel]["label"] = "promotion"
        return Reply(200, self._ok(answer))

    def _check_part(self, channel: str, part: Any) -> Reply | None:
        if not isinstance(part, dict):
            return self._error(400, "INVSMSMESSAGE" if channel == "sms" else "INVVIBERMESSAGE")
        if part.get("source") not in self.sources.get(channel, []):
            return self._error(400, "INVSOURCE")
        text = part.get("text")
        if not isinstance(text, str) or not text or (channel == "viber" and len(text) > 1000):
            return self._error(400, "INVTEXT")
        ttl = part.get("ttl")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 1440:
            return self._error(400, "INVREQUEST", "ttl must be 1..1440 minutes")
        if "flash" in part and (channel != "sms" or part["flash"] not in (0, 1)):
            return self._error(400, "INVREQUEST", "flash must be 0 or 1")
        return None

    def _status(self, data: dict[str, Any]) -> Reply:
        pid = data.get("messageID")
        msg = self.messages.get(pid) if isinstance(pid, str) else None
        if msg is None:
            return self._error(400, "INVMSGID")
        answer: dict[str, Any] = {"messageID": msg.provider_id}
        for channel, (word, at) in self._words(msg).items():
            answer[channel] = {"status": word, "date": _local(at).strftime("%Y-%m-%d %H:%M:%S")}
        return Reply(200, self._ok(answer))

    def _words(self, msg: FakeMessage) -> dict[str, tuple[str, float]]:
        """Each requested channel's status word and its time, at the fake clock's now."""
        now = self.clock.now()
        channels = msg.extra.get("channels", ["sms"])
        with self._lock:
            forced = self.forced.get(msg.provider_id)
        if forced is not None:
            return {c: (forced[c], now) for c in channels if c in forced}
        if "refused" in msg.extra:
            return {c: (msg.extra["refused"], msg.created_at) for c in channels}
        if self.is_final(msg):
            at = msg.created_at + self.delay
            word = _FINAL[msg.outcome]
            if len(channels) > 1 and msg.outcome is Outcome.DELIVERED:
                # Viber got through: the SMS fallback was never needed [S001 example].
                return {c: ("REFUND" if c == "sms" else word, at) for c in channels}
            return {c: (word, at) for c in channels}
        if now - msg.created_at >= self.delay / 2:
            return {c: ("SENT", msg.created_at + self.delay / 2) for c in channels}
        return {c: ("ACCEPTD", msg.created_at) for c in channels}

    def _balance(self, data: dict[str, Any]) -> Reply:
        return Reply(200, self._ok({"balance": "0.000" if self.no_balance else self.balance_sms}))

    def _balance_ext(self, data: dict[str, Any]) -> Reply:
        sms, viber = ("0.000", "0.000") if self.no_balance else (self.balance_sms, self.balance_viber)
        return Reply(200, self._ok({"balance": {"sms": sms, "viber": viber}}))

    def _sources(self, data: dict[str, Any]) -> Reply:
        channels = data.get("channels", list(CHANNELS))
        if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
            return self._error(400, "INVCHANNELS")
        return Reply(200, self._ok({c: list(self.sources.get(c, [])) for c in channels}))

    def _pricelist(self, data: dict[str, Any]) -> Reply:
        return self._price_answer(data, "pricelist", None)

    def _price(self, data: dict[str, Any]) -> Reply:
        if not isinstance(data.get("mnc"), str):
            return self._error(400, "INVREQUEST", "mnc is required")
        return self._price_answer(data, "price", data["mnc"])

    def _price_answer(self, data: dict[str, Any], key: str, mnc: str | None) -> Reply:
        channels = data.get("channels", list(CHANNELS))
        if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
            return self._error(400, "INVCHANNELS")
        mcc = str(data.get("mcc", "255"))  # "Ukraine 255 by default" [S001]
        table: dict[str, Any] = {}
        for channel in channels:
            networks = self.prices.get(channel, {}).get(mcc, {})
            if mnc is not None:
                networks = {k: v for k, v in networks.items() if k == mnc}
            if networks:
                table[channel] = {mcc: dict(networks)}
        return Reply(200, self._ok({key: table}))

    # -- envelopes --------------------------------------------------------------------------

    def _stamp(self) -> str:
        return _local(self.clock.now()).strftime("%Y-%m-%d %H:%M:%S %z")

    def _ok(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"success": 1, "date": self._stamp(), "data": data}

    def _error(self, status: int, code: str, description: str = "") -> Reply:
        error = {"code": code, "date": self._stamp(), "description": description}
        return Reply(status, {"success": 0, "error": error})

    def _accepted_word(self, n: int) -> str:
        if self.accepted_word == "alternate":
            return ("ACCEPTED", "ACCEPTD")[n % 2]
        return self.accepted_word

    def _cost(self, price: str, n: int) -> float | str:
        as_number = self.cost_as == "number" or (self.cost_as == "alternate" and n % 2 == 0)
        return float(price) if as_number else price


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(TZ)
