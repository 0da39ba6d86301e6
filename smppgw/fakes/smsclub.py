"""Fake SMS Club (shared/providers/smsclub.md): /sms/send, /sms/status, /sms/balance and
/sms/originator over POST + JSON with a Bearer token, on a real loopback HTTP server.

Quirks reproduced because clients must handle them: partial success through `add_info` with
HTTP 200; 453 for the same (src_addr, phone, message) within 120 s of the fake's clock; the
9 requests per second limit (429); PHP's empty array `[]` where an object is empty.

Inferred behaviour ([INF], all adjustable through the constructor or `from_options`):
error bodies `{"error":{"code":…,"message":…}}`; a 453 refuses the whole request when any
phone is a duplicate; "no balance" answers sends with 400; a src_addr missing from the
originator list gets 400 (`strict_sender`); a phone that is not digits, or ends in 0001, is
refused in `add_info` with an "invalid number" text; `blacklist` numbers are refused there
with the documented blacklist text; 429 answers carry `Retry-After: 1`.

Test controls beyond the base: `blacklist`, `no_balance`, `answer_after_accepting(status)`
(the next send is accepted, then answered with an error, as a proxy timing out would) and
`stall_next_send()` / `release()` (the next send is accepted and its answer held back).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any

from smppgw.fakes.base import FakeClock, FakeMessage, FakeProvider, Outcome, Recorded, Reply, outcome_for

INVALID_TEXT = "Неверный номер телефона"  # "invalid phone number" [INF]
BLACKLIST_TEXT = "Данный номер находится в черном списке"  # the documented example [S002 clients]
MAX_ITEMS = 100

# The status word a message has once final, by outcome; ENROUTE before [S002].
FINAL_WORDS = {
    Outcome.DELIVERED: "DELIVRD",
    Outcome.UNDELIVERED: "UNDELIV",
    Outcome.EXPIRED: "EXPIRED",
    Outcome.REJECTED: "REJECTD",
    Outcome.NEVER_FINAL: "ENROUTE",
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": status, "message": message}}, dict(headers or {}))


class FakeSmsClub(FakeProvider):
    type = "smsclub"
    routes = [
        ("POST", "/sms/send", "handle_send"),
        ("POST", "/sms/status", "handle_status"),
        ("POST", "/sms/balance", "handle_balance"),
        ("POST", "/sms/originator", "handle_originator"),
    ]

    def __init__(
        self,
        *,
        token: str = "test-token",
        senders: Iterable[str] = ("VashZakaz", "test1", "test2"),
        strict_sender: bool = True,
        duplicate_window: float = 120.0,
        money: str = "8111.1700",
        currency: str = "UAH",
        blacklist: Iterable[str] = (),
        rate_limit: float | None = 9.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: FakeClock | None = None,
        delay: float = 1.0,
    ) -> None:
        super().__init__(host=host, port=port, clock=clock, delay=delay, rate_limit=rate_limit)
        self.token = token
        self.senders = list(senders)
        self.strict_sender = strict_sender
        self.duplicate_window = duplicate_window
        self.money, self.currency = money, currency
        self.blacklist = set(blacklist)
        self._recent: dict[tuple[str, str, str], float] = {}  # (src_addr, phone, message) -> accepted at
        self._after_accept: list[int] = []
        self._stall: threading.Event | None = None
        self._stall_armed = False

    @classmethod
    def from_options(cls, port: int, options: dict[str, Any]) -> FakeSmsClub:
        """Build from CLI/config options: token, senders, strict_sender, duplicate_window, money,
        currency, blacklist, rate_limit (0 = off), delay, no_balance, host."""
        rate = options.get("rate_limit", 9.0)
        fake = cls(
            port=port,
            host=str(options.get("host", "127.0.0.1")),
            token=str(options.get("token", "test-token")),
            senders=[str(s) for s in options.get("senders", ("VashZakaz", "test1", "test2"))],
            strict_sender=bool(options.get("strict_sender", True)),
            duplicate_window=float(options.get("duplicate_window", 120.0)),
            money=str(options.get("money", "8111.1700")),
            currency=str(options.get("currency", "UAH")),
            blacklist=[str(p) for p in options.get("blacklist", ())],
            rate_limit=float(rate) if rate else None,
            delay=float(options.get("delay", 1.0)),
        )
        fake.no_balance = bool(options.get("no_balance", False))
        return fake

    # -- test controls ----------------------------------------------------------------------

    def answer_after_accepting(self, status: int = 504, count: int = 1) -> None:
        """The next `count` sends are carried out, then answered with `status` (a lost answer)."""
        with self._lock:
            self._after_accept.extend([status] * count)

    def stall_next_send(self) -> None:
        """The next send is carried out and its answer held until `release()` (client timeout)."""
        with self._lock:
            self._stall = threading.Event()
            self._stall_armed = True

    def release(self) -> None:
        with self._lock:
            if self._stall is not None:
                self._stall.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    # -- routes -----------------------------------------------------------------------------

    def handle_send(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        body, refusal = self._body(rec)
        if refusal:
            return refusal
        src, phones, text = body.get("src_addr"), body.get("phone"), body.get("message")
        if not isinstance(src, str) or not src:
            return _error(400, "src_addr is required")
        if self.strict_sender and src not in self.senders:
            return _error(400, f"src_addr {src!r} is not an active alpha name")
        if not isinstance(phones, list) or not phones or len(phones) > MAX_ITEMS:
            return _error(400, f"phone must be an array of 1..{MAX_ITEMS} numbers")
        if not all(isinstance(p, str) for p in phones):
            return _error(400, "phone items must be strings")
        if not isinstance(text, str) or not text:
            return _error(400, "message is required")
        if self.no_balance:
            return _error(400, "Insufficient funds")
        outcomes = [outcome_for(p) if re.fullmatch(r"[0-9]+", p) else Outcome.INVALID_NUMBER for p in phones]
        if Outcome.THROTTLED in outcomes:
            return _error(429, "Too many requests", {"Retry-After": "1"})
        if Outcome.SERVER_ERROR in outcomes:
            return _error(503, "Service is temporarily unavailable")

        now = self.clock.now()
        refused = {
            p: (INVALID_TEXT if o is Outcome.INVALID_NUMBER else BLACKLIST_TEXT)
            for p, o in zip(phones, outcomes, strict=True)
            if o is Outcome.INVALID_NUMBER or p in self.blacklist
        }
        with self._lock:
            self._recent = {k: t for k, t in self._recent.items() if now - t < self.duplicate_window}
            # [INF] one duplicate (earlier, or twice in this request) refuses the whole request.
            if len(set(phones)) < len(phones) or any((src, p, text) in self._recent for p in phones):
                return _error(453, "Duplication of a message in an interval of less than 2 minutes")
            info: dict[str, str] = {}
            for p in phones:
                if p not in refused:
                    info[self.accept(p, text, src).provider_id] = p
                    self._recent[(src, p, text)] = now
            after = self._after_accept.pop(0) if self._after_accept else None
            stall, self._stall_armed = (self._stall if self._stall_armed else None), False
        answer: dict[str, Any] = {"info": info or []}
        if refused:
            answer["add_info"] = refused
        if stall is not None:
            stall.wait(timeout=30)
        if after is not None:
            return _error(after, "Gateway timeout")
        return Reply(200, {"success_request": answer})

    def handle_status(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        body, refusal = self._body(rec)
        if refusal:
            return refusal
        ids = body.get("id_sms")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_ITEMS:
            return _error(400, f"id_sms must be an array of 1..{MAX_ITEMS} ids")
        info: dict[str, str] = {}
        with self._lock:
            for pid in map(str, ids):
                msg = self.messages.get(pid)
                if msg is not None:  # unknown ids are left out [INF]
                    info[pid] = self.word(msg)
        return Reply(200, {"success_request": {"info": info or []}})

    def handle_balance(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        if not self._authorized(rec):
            return _error(401, "Unauthorized")
        money = "0.0000" if self.no_balance else self.money
        return Reply(200, {"success_request": {"info": {"money": money, "currency": self.currency}}})

    def handle_originator(self, rec: Recorded, _m: re.Match[str]) -> Reply:
        if not self._authorized(rec):
            return _error(401, "Unauthorized")
        return Reply(200, {"success_request": {"info": list(self.senders)}})

    # -- helpers ----------------------------------------------------------------------------

    def word(self, msg: FakeMessage) -> str:
        """The status word /sms/status gives for `msg` now."""
        return FINAL_WORDS.get(msg.outcome, "DELIVRD") if self.is_final(msg) else "ENROUTE"

    def _authorized(self, rec: Recorded) -> bool:
        return rec.headers.get("authorization") == f"Bearer {self.token}"

    def _body(self, rec: Recorded) -> tuple[dict[str, Any], Reply | None]:
        if not self._authorized(rec):
            return {}, _error(401, "Unauthorized")
        try:
            body = json.loads(rec.body or b"null")
        except ValueError:
            return {}, _error(400, "body is not JSON")
        if not isinstance(body, dict):
            return {}, _error(400, "body must be a JSON object")
        return body, None


if __name__ == "__main__":  # python -m smppgw.fakes.smsclub [port]
    import sys
    import time

    server = FakeSmsClub(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8502).start()
    print(f"fake SMS Club on {server.url}, token test-token", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
