"""Fake smSend REST API (../shared/providers/smsend.md, fakes.md §7), for tests and demos.

Serves the routes at the root and under /API/v1.0/REST, so either may be the adapter's url.
Reproduces the quirks a client must handle: plain-text `USER_KEY;KEY` logins, underscored
auth headers (a `User-Key` spelling is not recognised), session keys that expire after
`session_idle` seconds without calls (on the fake clock), 404 for bad credentials vs 401 for
bad keys, and 201 on send.

Per-recipient status over the fake clock, from acceptance (or the scheduled time):
WAITING, then SENT at delay/4, WAIT4DLVR at delay/2, the final word at `delay` (DLVRD, or
ERROR / TIMEOUT / KO by number suffix). Types L and LL have no DLR and stay SENT; ...0003
stays SENT for ever. Send-time outcomes: ...0001 → 400, ...0004 → 429, ...0005 → 500 (no
order created). `demo = True` ends every message as DEMO.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from smppgw.fakes.base import FakeMessage, FakeProvider, Outcome, Recorded, Reply, outcome_for

_ROOT = r"(?:/API/v1\.0/REST)?"
TYPES = frozenset({"N", "L", "LL", "GP", "SI", "GS", "EE"})  # documented + internal, both accepted
NO_DLR_TYPES = frozenset({"L", "LL"})
SCHEDULE_FORMATS = ("%d%m%y", "%Y%m%d", "%d%m%y%H%M", "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M.0")
FINAL_WORDS = {
    Outcome.DELIVERED: "DLVRD",
    Outcome.UNDELIVERED: "ERROR",
    Outcome.EXPIRED: "TIMEOUT",
    Outcome.REJECTED: "KO",
}
DEFAULT_ALIASES = (
    ("MySender", 1),
    ("Pending", 0),
    ("AgcomOk", 2),
    ("Blocked", 3),
    ("AgcomNo", 4),
    ("PreConf", 9),
)


@dataclass
class FakeOrder:
    order_id: str
    message_type: str
    text: str
    sender: str
    encoding: str
    scheduled_at: float | None  # fake-clock time, None when sent at once
    recipients: list[FakeMessage]
    forced: str | None = None  # a status word a test imposes on every recipient


class FakeSmSend(FakeProvider):
    type = "smsend"
    routes = [
        ("GET", _ROOT + "/login", "login"),
        ("GET", _ROOT + "/token", "token"),
        ("GET", _ROOT + "/checksession", "checksession"),
        ("POST", _ROOT + "/sms", "send"),
        ("GET", _ROOT + r"/sms/(?P<order_id>[^/]+)", "order_status"),
        ("DELETE", _ROOT + r"/sms/(?P<order_id>[^/]+)", "delete_order"),
        ("GET", _ROOT + "/status", "status"),
        ("GET", _ROOT + "/alias", "aliases"),
        ("GET", _ROOT + r"/newsrsmsmessage(?:/(?P<sims>[^/]+))?", "new_inbound"),
    ]

    def __init__(
        self,
        *,
        username: str = "user",
        password: str = "secret",
        session_idle: float = 300.0,
        timezone: str = "Europe/Rome",
        demo: bool = False,
        strict_sender: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username, self.password = username, password
        self.user_key = "UK" + secrets.token_hex(6)
        self.session_idle = session_idle  # 5 minutes without calls [GH]
        self.tz = ZoneInfo(timezone)
        self.demo = demo
        self.strict_sender = strict_sender  # refuse senders that are not usable aliases
        self.refuse_keys = False  # every key is refused with 401, even fresh ones (tests)
        self.money: float | None = 25.5
        self.credits = {"N": 1000, "L": 2000, "LL": 3000}
        self.aliases = [
            {
                "id-alias": i + 1,
                "alias": a,
                "alias-state": s,
                "is-numeric": a.isdigit(),
                "company-name": "Fake",
            }
            for i, (a, s) in enumerate(DEFAULT_ALIASES)
        ]
        self.sessions: dict[str, float] = {}  # session key → last use on the fake clock
        self.token = secrets.token_hex(16)  # long-lived, one per user [3P]
        self.orders: dict[str, FakeOrder] = {}
        self.inbox: list[dict[str, Any]] = []
        self._mo_id = 0
        self._after_create: list[int | None] = []  # per coming order: None stalls, else answer status
        self._route_failures: list[list[Any]] = []  # [method, path regex, reply, matches to let pass]
        self._release = threading.Event()

    @classmethod
    def from_options(cls, port: int, options: dict[str, Any]) -> FakeSmSend:
        """Build (not start) a fake from CLI/config options; unknown keys are an error."""
        known = {
            "host": str,
            "username": str,
            "password": str,
            "session_idle": float,
            "timezone": str,
            "demo": bool,
            "strict_sender": bool,
            "delay": float,
            "rate_limit": float,
            "webhook_url": str,
        }
        unknown = set(options) - set(known)
        if unknown:
            raise ValueError(f"smsend fake: unknown options {sorted(unknown)}; known: {sorted(known)}")

        def convert(key: str, value: Any) -> Any:
            if known[key] is bool and isinstance(value, str):  # "false" from a command line is False
                return value.strip().lower() in ("1", "true", "yes", "on")
            return known[key](value)

        return cls(port=port, **{k: convert(k, v) for k, v in options.items()})

    # -- test controls ----------------------------------------------------------------------

    def add_inbound(
        self,
        sender: str,
        message: str,
        id_sim: str = "+393400000001",
        keyword: str = "",
        at: float | None = None,
    ) -> str:
        """Queue an MO message for /newsrsmsmessage; returns its id_message."""
        with self._lock:
            self._mo_id += 1
            self.inbox.append(
                {
                    "id_message": str(self._mo_id),
                    "id_sim": id_sim,
                    "sender": sender,
                    "message": message,
                    "keyword": keyword,
                    "sms_date": self._fmt(self.clock.now() if at is None else at),
                    "_new": True,
                }
            )
            return str(self._mo_id)

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def fail_after_create(self, status: int, count: int = 1) -> None:
        """The next `count` sends create their order, then answer `status` (a lost answer)."""
        with self._lock:
            self._after_create.extend([status] * count)

    def stall_after_create(self, count: int = 1) -> None:
        """The next `count` sends create their order, then hang until `release()` (client timeout)."""
        with self._lock:
            self._after_create.extend([None] * count)

    def release(self) -> None:
        self._release.set()

    def fail_next_on(self, method: str, path: str, status: int, body: Any = b"", after: int = 0) -> None:
        """The next request matching method and path regex (after the API root), once `after`
        such requests went through, gets `status`."""
        with self._lock:
            rx = re.compile(_ROOT + path + r"\Z")
            self._route_failures.append([method, rx, Reply(status, body), after])

    def force_status(self, order_id: str, word: str) -> None:
        with self._lock:
            self.orders[order_id].forced = word

    def stop(self) -> None:
        self._release.set()  # free stalled handler threads so shutdown does not wait on them
        super().stop()

    # -- helpers ----------------------------------------------------------------------------

    def _dispatch(self, rec: Recorded) -> Reply:
        with self._lock:
            for i, (method, rx, reply, after) in enumerate(self._route_failures):
                if method == rec.method and rx.match(rec.path):
                    if after:
                        self._route_failures[i][3] -= 1
                        break
                    del self._route_failures[i]
                    self.requests.append(rec)
                    return reply
        return super()._dispatch(rec)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        # Headers and body leave in two writes; with Nagle on, each answer waits ~40 ms for an ACK.
        handler = super()._handler_class()
        handler.disable_nagle_algorithm = True
        return handler

    def _fmt(self, t: float) -> str:
        return datetime.fromtimestamp(t, self.tz).strftime("%Y%m%d%H%M%S")

    def _auth_error(self, rec: Recorded) -> Reply | None:
        """None when the request carries valid keys; else the documented refusal."""
        user_key = rec.headers.get("user_key")
        session, token = rec.headers.get("session_key"), rec.headers.get("access_token")
        if user_key is None or (session is None and token is None):
            return Reply(401, "")
        if user_key != self.user_key:
            return Reply(404, "")  # "the User_key was not found"
        now = self.clock.now()
        with self._lock:
            if self.refuse_keys:
                return Reply(401, "")
            if session is not None:
                last = self.sessions.get(session)
                if last is None or now - last > self.session_idle:
                    self.sessions.pop(session, None)
                    return Reply(401, "")
                self.sessions[session] = now
                return None
        return None if token == self.token else Reply(401, "")

    def status_of(self, order: FakeOrder, msg: FakeMessage) -> tuple[str, float | None]:
        """(status word, time it was reached if final) of one recipient now."""
        now = self.clock.now()
        if order.forced:
            return order.forced, now
        if order.scheduled_at is not None and now < order.scheduled_at:
            return "SCHEDULED", None
        start = max(msg.created_at, order.scheduled_at or 0.0)
        age = now - start
        if age < self.delay / 4:
            return "WAITING", None
        if age < self.delay / 2 or msg.outcome is Outcome.NEVER_FINAL:
            return "SENT", None
        no_dlr = order.message_type in NO_DLR_TYPES
        if age < self.delay:
            return ("SENT" if no_dlr else "WAIT4DLVR"), None
        if self.demo:
            return "DEMO", start + self.delay
        if no_dlr and msg.outcome is Outcome.DELIVERED:
            return "SENT", None  # no delivery report on low-cost types, ever
        return FINAL_WORDS.get(msg.outcome, "DLVRD"), start + self.delay

    def _schedule(self, value: str) -> float | None:
        for fmt in SCHEDULE_FORMATS:
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=self.tz).timestamp()
            except ValueError:
                continue
        raise ValueError(value)

    # -- routes -----------------------------------------------------------------------------

    def _login(self, rec: Recorded, token: bool) -> Reply:
        user, password = rec.query.get("username", [None])[0], rec.query.get("password", [None])[0]
        if user is None or password is None:
            return Reply(400, "Missing parameter: username and password are required")
        if user != self.username or password != self.password:
            return Reply(404, "")
        if token:
            return Reply(200, f"{self.user_key};{self.token}")
        key = secrets.token_hex(16)
        with self._lock:
            self.sessions[key] = self.clock.now()
        return Reply(200, f"{self.user_key};{key}")

    def login(self, rec: Recorded, m: re.Match[str]) -> Reply:
        return self._login(rec, token=False)

    def token(self, rec: Recorded, m: re.Match[str]) -> Reply:
        return self._login(rec, token=True)

    def checksession(self, rec: Recorded, m: re.Match[str]) -> Reply:
        return Reply(200, "false" if self._auth_error(rec) else "true")

    def send(self, rec: Recorded, m: re.Match[str]) -> Reply:
        if refused := self._auth_error(rec):
            return refused
        try:
            body = rec.json()
        except ValueError:
            return Reply(400, "Invalid input: body is not JSON")
        mtype, text, sender = body.get("message_type"), body.get("message"), body.get("sender") or ""
        recipients = body.get("recipient")
        if mtype not in TYPES:
            return Reply(400, f"Invalid input: unknown message_type {mtype!r}")
        if not isinstance(text, str) or not text:
            return Reply(400, "Invalid input: message is empty")
        if len(text) > (160 if mtype in NO_DLR_TYPES else 1000):
            return Reply(400, "Invalid input: message too long")
        if not isinstance(recipients, list) or not recipients:
            return Reply(400, "Invalid input: recipient must be a non-empty list")
        if sender and mtype in NO_DLR_TYPES:
            return Reply(400, f"Invalid input: sender not allowed for message_type {mtype}")
        usable = {a["alias"] for a in self.aliases if a["alias-state"] in (1, 2, 9)}
        if sender and self.strict_sender and sender not in usable:
            return Reply(400, f"Invalid input: sender alias {sender!r} is not approved")
        if body.get("encoding", "gsm") not in ("gsm", "ucs2"):
            return Reply(400, "Invalid input: encoding must be gsm or ucs2")
        try:
            when = body.get("scheduled_delivery_time")
            scheduled = self._schedule(when) if when else None
        except ValueError:
            return Reply(400, "Invalid input: scheduled_delivery_time format")
        if self.no_balance:
            return Reply(400, "Not enough credit to send the message")
        outcomes = [(r, outcome) for r in recipients if (outcome := _outcome(r)) is not Outcome.DELIVERED]
        for number, outcome in outcomes:
            if outcome is Outcome.INVALID_NUMBER and not body.get("allowInvalidRecipients"):
                return Reply(400, f"Invalid input: recipient {number} is not a valid phone number")
            if outcome is Outcome.THROTTLED:
                return Reply(429, "Too many requests", {"Retry-After": "1"})
            if outcome is Outcome.SERVER_ERROR:
                return Reply(500, "Internal server error")
        order_id = str(body.get("order_id") or uuid.uuid4())
        with self._lock:
            if order_id in self.orders:
                return Reply(400, f"Invalid input: order_id {order_id} already used")
            valid = [r for r in recipients if _outcome(r) is not Outcome.INVALID_NUMBER]
            msgs = [
                self.accept(r, text, sender, f"{order_id}/{i}", order_id=order_id)
                for i, r in enumerate(valid)
            ]
            self.orders[order_id] = FakeOrder(
                order_id, mtype, text, sender, body.get("encoding", "gsm"), scheduled, msgs
            )
            after = self._after_create.pop(0) if self._after_create else 0
        if after is None:
            self._release.wait(timeout=30)
        elif after:
            return Reply(after, "Internal server error")
        return Reply(
            201,
            {
                "result": "OK",
                "order_id": order_id,
                "total_sent": len(msgs),
                "internal_order_id": self.new_id(),
            },
        )

    def order_status(self, rec: Recorded, m: re.Match[str]) -> Reply:
        if refused := self._auth_error(rec):
            return refused
        order = self.orders.get(unquote(m["order_id"]))
        if order is None:
            return Reply(404, "")
        rows = []
        for msg in order.recipients:
            word, done = self.status_of(order, msg)
            rows.append(
                {
                    "status": word,
                    "destination": msg.destination,
                    "delivery_date": "" if done is None else self._fmt(done),
                }
            )
        return Reply(200, {"recipient_number": len(rows), "result": "OK", "recipients": rows})

    def delete_order(self, rec: Recorded, m: re.Match[str]) -> Reply:
        if refused := self._auth_error(rec):
            return refused
        order_id = unquote(m["order_id"])
        with self._lock:
            order = self.orders.get(order_id)
            # 404 also when "the message status is not SCHEDULED" [S003].
            if order is None or any(self.status_of(order, r)[0] != "SCHEDULED" for r in order.recipients):
                return Reply(404, "")
            del self.orders[order_id]
        return Reply(200, {"result": "OK"})

    def status(self, rec: Recorded, m: re.Match[str]) -> Reply:
        if refused := self._auth_error(rec):
            return refused
        aliases = rec.query.get("typeAliases", ["false"])[0] == "true"
        internal = dict(zip(("N", "L", "LL"), ("GP", "GS", "SI"), strict=True))
        sms = [
            {"type": t if aliases else internal[t], "quantity": 0 if self.no_balance else q}
            for t, q in self.credits.items()
        ]
        money = 0.0 if self.no_balance else self.money
        if rec.query.get("getMoney", ["false"])[0] != "true":
            money = None
        return Reply(200, {"money": money, "sms": sms, "email": None, "landing": None})

    def aliases(self, rec: Recorded, m: re.Match[str]) -> Reply:
        if refused := self._auth_error(rec):
            return refused
        page, size = int(rec.query.get("pageNumber", ["1"])[0]), int(rec.query.get("pageSize", ["10"])[0])
        shown = self.aliases
        if rec.query.get("hide-not-approved", ["false"])[0] == "true":
            shown = [a for a in shown if a["alias-state"] in (1, 2, 9)]
        return Reply(
            200,
            {
                "alias": shown[(page - 1) * size : page * size],
                "total": len(shown),
                "pageNumber": page,
                "result": "OK",
                "pageSize": size,
            },
        )

    def new_inbound(self, rec: Recorded, m: re.Match[str]) -> Reply:
        if refused := self._auth_error(rec):
            return refused
        limit = int(rec.query.get("limit", ["100"])[0])
        if not 0 < limit <= 100:
            return Reply(400, "Invalid input: limit must be 1..100")
        sims = {_sim(s) for s in unquote(m["sims"]).split(",")} if m["sims"] else None
        with self._lock:
            new = [mo for mo in self.inbox if mo["_new"] and (sims is None or _sim(mo["id_sim"]) in sims)][
                :limit
            ]
            for mo in new:
                mo["_new"] = False  # "received since the last call of this method"
        rows = [{k: v for k, v in mo.items() if k != "_new"} for mo in new]
        return Reply(200, {"result": "OK", "srsmshistory": rows})


def _outcome(number: Any) -> Outcome:
    return outcome_for(str(number))


def _sim(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return digits[2:] if number.strip().startswith("00") else digits
