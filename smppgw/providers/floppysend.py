"""FloppySend adapter (spec: shared/providers/floppysend.md, seed 000).

Owns the /sms and /balance calls, FloppySend's answer shapes, the one status table and the
reading of its webhook bodies. There is no status, cancel, sender-list or MO-poll endpoint:
DLRs and MO come only by webhook, which FloppySend retries (1/10/300/900 s), so
`parse_webhook` is a pure function of the request.

[INF] choices (nothing published backs them), with the option that changes each:

* `api_key` → `X-api-key`, optional `secret_hash` → `X-Secret-Hash`, sent bare: the seed's PHP
  sample wraps the key in literal quotes, and quotes copied into the config are stripped.
* Names `To/From/Dcs/Text/Sched` as in the tables (`lowercase_params = true`: the samples'
  `to/from/...`). `send_method` / `balance_method`: "POST" (form body, as the samples) or "GET".
* `Sched` is `YYYY-MM-DDTHH:MM:SS` in `timezone` (default "UTC"), which also reads zone-less
  webhook dates: the docs name no zone.
* `batch_size` defaults to 1: the multi-number separator is undocumented. Above 1, recipients
  of one text/sender/coding/schedule are joined with `number_separator` (default ","), and the
  answer must hold one `Datainfo` element per recipient in order (a single one is shared).
* Failure = `Result != "Success"`, `Error_Code != "0"` or `Status` "Failed". The code list is
  unpublished: `error_codes` (code → command_status) wins, else `Error_Desc` words give 0x0B
  (number), 0x0A (sender), 0x61 (schedule), 0x01 (text), anything else 0x45. The code goes to
  the receipt `err:`.
* A 2xx answer that is not FloppySend JSON is Permanent RSYSERR, never retried: the message
  may have gone out.
* `check_sender` (default true): alphanumeric senders over 11 or numeric over 15 characters
  get 0x0A without a request. `requests_per_second` (default 5): limits exist, numbers don't.
* Webhook bodies: JSON (object, list, or `{"Datainfo": [...]}`), form-encoded, or `key:value`
  text (one pair a line, or an SMPP receipt); query parameters count too. Keys are
  case-insensitive: id from `webhook_id_keys` (ID, MessageId, msgid), status from
  `webhook_status_keys` (Status, stat). Status words match case-insensitively; one not in the
  table gives `unknown_status` ("UNKNOWN", final; "ENROUTE" leaves it to the status horizon).
* A body with from and text and no known status word is an inbound (MO) message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qsl

import httpx

from smppgw.config import ProviderSettings
from smppgw.providers.base import (
    DELETED,
    DELIVERED,
    ENROUTE,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVSCHED,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    EXPIRED,
    REJECTED,
    STAT_WORDS,
    UNDELIVERABLE,
    UNKNOWN,
    Balance,
    Capabilities,
    Inbound,
    NotSupported,
    OutboundSms,
    Permanent,
    ProviderError,
    ProviderLimits,
    SendResult,
    StatusReport,
    WebhookRequest,
)
from smppgw.providers.http import classify_status, make_client, request

log = logging.getLogger(__name__)

# Every word FloppySend may use, lower-cased, to SMPP message_state.
# fmt: off
STATUS_TABLE: dict[str, int] = {
    "sent": ENROUTE,  # the send answer: accepted, not yet delivered
    # Webhook words from help.floppysend.com/article/503 (casing unknown).
    "delivered": DELIVERED, "undelivered": UNDELIVERABLE, "rejected": REJECTED, "expired": EXPIRED,
    # SMPP receipt words, for receipt-like bodies.
    "delivrd": DELIVERED, "undeliv": UNDELIVERABLE, "rejectd": REJECTED, "enroute": ENROUTE,
    "deleted": DELETED, "unknown": UNKNOWN,
    # [INF] Queue words mean "taken by the provider", never SMPP ACCEPTED (6, final).
    "accepted": ENROUTE, "acceptd": ENROUTE, "queued": ENROUTE, "pending": ENROUTE, "submitted": ENROUTE,
    "failed": UNDELIVERABLE, "undeliverable": UNDELIVERABLE,
}
# fmt: on

# Error_Desc words → command_status, first match wins; used when `error_codes` lacks the code.
# Whole words only: "Unable to deliver" must not read as a bad `To`.
_DESC_STATUS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\b(number|recipient|destination|msisdn|phone)", re.I), ESME_RINVDSTADR),
    (re.compile(r"\b(sender|source|originator)", re.I), ESME_RINVSRCADR),
    (re.compile(r"\b(sched\w*|date|time)\b", re.I), ESME_RINVSCHED),
    (re.compile(r"\b(text|length|too long|empty message)\b", re.I), ESME_RINVMSGLEN),
)
_MO_FROM = ("from", "sender", "source", "msisdn")
_MO_TO = ("to", "recipient", "destination", "receiver")
_MO_TEXT = ("text", "message", "body", "content", "sms")
_ERR_KEYS = ("error_code", "errorcode", "err", "error")
_SMPP_DATE_KEYS = ("done date", "done_date", "donedate")  # YYMMDDhhmm[ss]
_DATE_KEYS = ("date", "timestamp", "time", "datetime")  # ISO, or Unix seconds
# A key at a word start, `key:` or `key=`; "submit date"/"done date" are SMPP receipt keys.
_KV_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z_][\w-]*(?: date)?)\s*[:=]", re.I)


class FloppySend:
    """Adapter for FloppySend's HTTP API (https://api.floppy.ai)."""

    type = "floppysend"

    def __init__(self, settings: ProviderSettings) -> None:
        self.name = settings.name
        self._url = settings.url
        get = settings.get
        api_key = _unquote(get("api_key", str, secret=True))
        secret_hash = get("secret_hash", str, None, secret=True)
        self._secrets = tuple(s for s in (api_key, secret_hash and _unquote(secret_hash)) if s)
        self._lower = get("lowercase_params", bool, False)
        self._send_method = _method(settings, "send_method")
        self._balance_method = _method(settings, "balance_method")
        self._separator = get("number_separator", str, ",")
        self._check_sender = get("check_sender", bool, True)
        self._tz = settings.zone("timezone", "UTC")
        self._id_keys = _lowered(get("webhook_id_keys", list, ["ID", "MessageId", "msgid"]))
        self._status_keys = _lowered(get("webhook_status_keys", list, ["Status", "stat"]))
        self._unknown_state = _stat_word_state(settings, get("unknown_status", str, "UNKNOWN"))
        self._error_codes = _error_codes(settings, get("error_codes", dict, {}))
        self.limits = ProviderLimits(
            batch_size=max(1, get("batch_size", int, 1)),
            max_concurrency=get("max_concurrency", int, 4),
            requests_per_second=float(get("requests_per_second", (int, float), 5.0)),
        )
        self.capabilities = Capabilities(
            poll=False, webhooks=True, inbound_webhook=True, balance=True, schedule=True, unicode_flag=True
        )
        headers = {"X-api-key": api_key, "Accept": "application/json"}
        if secret_hash:
            headers["X-Secret-Hash"] = _unquote(secret_hash)
        self._client = make_client(settings, headers=headers)
        self.pacer = self._client.pacer  # every request; its rate is set by the gateway

    def __repr__(self) -> str:  # explicit, so no attribute holding a secret is ever printed
        return f"FloppySend(name={self.name!r}, url={self._url!r})"

    # -- sending ------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        pending: list[tuple[int, OutboundSms]] = []
        for i, sms in enumerate(batch):
            problem = self._precheck(sms)
            if problem:
                results[i] = SendResult(sms.message_id, error=problem, state=REJECTED)
            else:
                pending.append((i, sms))
        groups = self._groups(pending)
        for n, group in enumerate(groups):
            try:
                answers = await self._send_group([sms for _, sms in group])
            except ProviderError as e:
                if n == 0:
                    raise  # nothing went out: the whole call failed
                # Earlier groups went out; keep their ids and stop here (429/5xx hit the rest too).
                for i, sms in (item for rest in groups[n:] for item in rest):
                    results[i] = SendResult(sms.message_id, error=e)
                break
            for (i, _), answer in zip(group, answers, strict=True):
                results[i] = answer
        return [results[i] for i in range(len(batch))]

    def _precheck(self, sms: OutboundSms) -> Permanent | None:
        if not sms.destination.isdigit():
            return Permanent("destination is not a number", command_status=ESME_RINVDSTADR)
        if self._check_sender:
            limit = 15 if sms.source.lstrip("+").isdigit() else 11
            if not sms.source or len(sms.source.lstrip("+")) > limit:
                return Permanent(f"sender longer than {limit} characters", command_status=ESME_RINVSRCADR)
        return None

    def _groups(self, pending: list[tuple[int, OutboundSms]]) -> list[list[tuple[int, OutboundSms]]]:
        """Messages one request may carry: same text, sender, coding and schedule."""
        size = self.limits.batch_size
        keyed: dict[tuple[Any, ...], list[tuple[int, OutboundSms]]] = {}
        for i, sms in pending:
            keyed.setdefault((sms.source, sms.text, sms.unicode, sms.schedule_at), []).append((i, sms))
        return [same[k : k + size] for same in keyed.values() for k in range(0, len(same), size)]

    async def _send_group(self, msgs: list[OutboundSms]) -> list[SendResult]:
        first = msgs[0]
        params = {
            "To": self._separator.join(m.destination for m in msgs),
            "From": first.source,
            "Dcs": "8" if first.unicode else "0",
            "Text": first.text,
        }
        if first.schedule_at is not None:
            params["Sched"] = first.schedule_at.astimezone(self._tz).strftime("%Y-%m-%dT%H:%M:%S")
        if self._lower:
            params = {k.lower(): v for k, v in params.items()}
        where = "params" if self._send_method == "GET" else "data"
        resp = await request(self._client, self._send_method, "/sms", **{where: params})
        body, items = self._answer(resp)
        if len(items) == 1 and len(msgs) > 1:
            items = items * len(msgs)  # one id for the whole request; webhooks name the `To`
        elif len(items) != len(msgs):
            raise Permanent(
                f"POST /sms: {len(items)} Datainfo elements for {len(msgs)} recipients",
                command_status=ESME_RSYSERR if _success(body) else ESME_RSUBMITFAIL,
                http_status=resp.status_code,
            )
        return [self._result(m, body, item) for m, item in zip(msgs, items, strict=True)]

    def _result(self, sms: OutboundSms, body: Mapping[str, str], item: Mapping[str, str]) -> SendResult:
        status = item.get("status", "")
        code = item.get("error_code", "0").strip() or "0"
        if not _success(body) or code != "0" or status.lower() == "failed":
            error = self._failure(body, item)
            return SendResult(sms.message_id, error=error, state=REJECTED, provider_status=status)
        provider_id = item.get("id") or None
        if provider_id is None:
            log.warning("event=floppysend_no_id provider=%s message_id=%s", self.name, sms.message_id)
        state = STATUS_TABLE.get(status.strip().lower(), ENROUTE)
        return SendResult(sms.message_id, provider_id=provider_id, state=state, provider_status=status)

    def _answer(self, resp: httpx.Response) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The top-level scalars and the Datainfo elements of an answer (keys lower-cased)."""
        classify_status(resp)
        code = resp.status_code
        what = f"{resp.request.method} {resp.request.url.path}: HTTP {code}"
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise Permanent(f"{what}: not FloppySend JSON", command_status=ESME_RSYSERR, http_status=code)
        body = _scalars(data)
        raw = next((v for k, v in data.items() if k.lower() == "datainfo"), None)
        items = [_scalars(x) for x in raw if isinstance(x, dict)] if isinstance(raw, list) else []
        if not items:
            if _success(body) and resp.is_success:
                raise Permanent(f"{what}: no Datainfo", command_status=ESME_RSYSERR, http_status=code)
            raise self._failure(body, {}, http_status=code)
        return body, items

    def _failure(
        self, body: Mapping[str, str], item: Mapping[str, str], http_status: int | None = None
    ) -> Permanent:
        code = (item.get("error_code") or body.get("error_code") or "").strip()
        desc = next(
            (d for d in (item.get("error_desc"), body.get("error_desc"), body.get("message")) if d),
            body.get("result", ""),
        )
        status = self._error_codes.get(code)
        if status is None:
            status = next((s for rx, s in _DESC_STATUS if rx.search(desc)), ESME_RSUBMITFAIL)
        detail = self._scrub(f"FloppySend refused: Error_Code={code!r} Error_Desc={desc!r}")
        return Permanent(detail, command_status=status, err=_err3(code), http_status=http_status)

    def _scrub(self, text: str) -> str:
        """Provider texts may echo what we sent; never let a credential reach a log."""
        for secret in self._secrets:
            text = text.replace(secret, "<hidden>")
        return text

    # -- webhooks -----------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        return [self._record(r) for r in _records(request)]

    def _record(self, rec: Mapping[str, str]) -> StatusReport | Inbound:
        pid, status = _first(rec, self._id_keys), _first(rec, self._status_keys)
        done_at = _done_at(rec, self._tz)
        source, text = _first(rec, _MO_FROM), _first(rec, _MO_TEXT)
        state = STATUS_TABLE.get(status.lower()) if status else None
        # An MO body may carry a status word of its own ("Received"); only known words make a DLR.
        is_mo = source is not None and text is not None and state is None
        if status is not None and not is_mo:
            if not pid:
                raise ValueError("FloppySend webhook: a status without a message id")
            if state is None:
                log.warning("event=floppysend_unknown_status provider=%s status=%r", self.name, status)
                state = self._unknown_state
            to, err = _first(rec, ("to",)), _err3(_first(rec, _ERR_KEYS) or "")
            return StatusReport(pid, state, status, err, done_at, destination=_digits(to) if to else None)
        if is_mo:
            assert source is not None and text is not None
            to = _digits(_first(rec, _MO_TO) or "")
            return Inbound(_digits(source), to, text, provider_id=pid or "", received_at=done_at)
        raise ValueError(f"FloppySend webhook: neither a status nor a message (keys {sorted(rec)[:10]})")

    # -- the rest -----------------------------------------------------------------------------

    async def balance(self) -> list[Balance]:
        resp = await request(self._client, self._balance_method, "/balance")
        body, items = self._answer(resp)
        if not _success(body):
            raise self._failure(body, items[0], http_status=resp.status_code)
        try:
            return [Balance(float(it.get("balance", "")), it.get("currency", "")) for it in items]
        except ValueError:
            raise Permanent("/balance: Balance is not a number", command_status=ESME_RSYSERR) from None

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        raise NotSupported("FloppySend has no status endpoint; statuses come by webhook")

    async def inbound(self) -> list[Inbound]:
        raise NotSupported("FloppySend sends MO by webhook only")

    async def senders(self) -> list[str]:
        raise NotSupported("FloppySend has no sender-ID list")

    async def cancel(self, provider_id: str) -> bool:
        raise NotSupported("FloppySend has no cancel call")

    async def close(self) -> None:
        await self._client.aclose()


# -- helpers ----------------------------------------------------------------------------------


def _records(req: WebhookRequest) -> list[dict[str, str]]:
    """Key/value records from a webhook request, keys lower-cased; ValueError if none."""
    text = req.body.decode("utf-8", errors="replace").strip()
    query = {k.lower(): v[-1] for k, v in req.query.items() if v}
    ctype = req.headers.get("content-type", "").lower()
    if not text:
        records: list[dict[str, str]] = [{}]
    elif text[0] in "{[" or "json" in ctype:
        records = _json_records(text)
    elif "x-www-form-urlencoded" in ctype or ("=" in text and not re.search(r"\s", text)):
        records = [{k.lower(): v for k, v in parse_qsl(text, keep_blank_values=True)}]
    else:
        records = [_kv_record(text)]
    records = [{**query, **r} for r in records]
    if not any(records):
        raise ValueError("FloppySend webhook: empty body")
    return records


def _json_records(text: str) -> list[dict[str, str]]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("FloppySend webhook: malformed JSON") from None
    if isinstance(data, dict):
        inner = next((v for k, v in data.items() if k.lower() == "datainfo" and isinstance(v, list)), None)
        if inner is None:
            return [_scalars(data)]
        outer = _scalars(data)
        return [{**outer, **_scalars(x)} for x in inner if isinstance(x, dict)]
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return [_scalars(x) for x in data]
    raise ValueError("FloppySend webhook: JSON is neither an object nor a list of objects")


def _kv_record(text: str) -> dict[str, str]:
    keys = list(_KV_KEY.finditer(text))
    if not keys:
        raise ValueError("FloppySend webhook: body is neither JSON, a form nor key:value text")
    rec: dict[str, str] = {}
    for n, m in enumerate(keys):
        key = m.group(1).lower()
        if key == "text":  # an SMPP receipt's text runs to the end and may hold colons
            rec[key] = text[m.end() :].strip()
            break
        end = keys[n + 1].start() if n + 1 < len(keys) else len(text)
        rec[key] = text[m.end() : end].strip().rstrip(",;")
    return rec


def _scalars(data: Mapping[str, Any]) -> dict[str, str]:
    """Lower-cased keys, string values (FloppySend sends strings; numbers are tolerated)."""
    return {
        str(k).lower(): str(v)
        for k, v in data.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool)
    }


def _first(rec: Mapping[str, str], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = rec.get(key)
        if value is not None and value.strip():
            return value.strip()
    return None


def _success(body: Mapping[str, str]) -> bool:
    return body.get("result", "").strip().lower() == "success"


def _err3(code: str) -> str:
    """The receipt err: field holds 3 characters; longer codes keep their last three."""
    code = code.strip()
    return code[-3:].rjust(3, "0") if code else "000"


def _digits(number: str) -> str:
    return number.strip().lstrip("+").replace(" ", "")


def _done_at(rec: Mapping[str, str], tz: tzinfo) -> datetime | None:
    """When the state was reached; None if absent or unreadable (the status still counts)."""
    smpp, value = _first(rec, _SMPP_DATE_KEYS), _first(rec, _DATE_KEYS)
    try:
        if smpp:
            when = datetime.strptime(smpp, "%y%m%d%H%M%S" if len(smpp) == 12 else "%y%m%d%H%M")
        elif value and value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        elif value:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=tz)).astimezone(UTC)


def _unquote(value: str) -> str:
    return value.strip().strip('"').strip("'")


def _lowered(keys: list[Any]) -> tuple[str, ...]:
    return tuple(str(k).lower() for k in keys)


def _method(settings: ProviderSettings, key: str) -> str:
    method = settings.get(key, str, "POST").upper()
    if method not in ("GET", "POST"):
        raise settings.error(key, '"GET" or "POST"')
    return method


def _stat_word_state(settings: ProviderSettings, word: str) -> int:
    states = {w: s for s, w in STAT_WORDS.items()}
    if word.upper() not in states:
        raise settings.error("unknown_status", f"one of {', '.join(sorted(states))}")
    return states[word.upper()]


def _error_codes(settings: ProviderSettings, table: dict[str, Any]) -> dict[str, int]:
    for code, status in table.items():
        if isinstance(status, bool) or not isinstance(status, int):
            raise settings.error(f"error_codes.{code}", "an integer command_status")
    return {str(code).strip(): status for code, status in table.items()}
