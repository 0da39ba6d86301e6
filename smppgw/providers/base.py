"""The provider seam: what the gateway hands an HTTP SMS provider adapter and what it gets back.

Every adapter (one module per provider) implements `Provider`. Adapters classify errors once
(`Retryable` / `Permanent` / `Misconfigured`) and map every provider status word to an SMPP
`message_state` in one table of their own; the gateway never looks at provider JSON.

Adapters do not touch the store, sessions or metrics; they raise or return values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

# SMPP 3.4 message_state values (§5.2.28), repeated here so adapters need nothing from smpp/.
ENROUTE, DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, ACCEPTED, UNKNOWN, REJECTED = range(1, 9)
FINAL_STATES = frozenset({DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, ACCEPTED, UNKNOWN, REJECTED})
STAT_WORDS = {
    ENROUTE: "ENROUTE",
    DELIVERED: "DELIVRD",
    EXPIRED: "EXPIRED",
    DELETED: "DELETED",
    UNDELIVERABLE: "UNDELIV",
    ACCEPTED: "ACCEPTD",
    UNKNOWN: "UNKNOWN",
    REJECTED: "REJECTD",
}

# SMPP command_status values that provider refusals map to (smpp34.md §1.3, providers/README.md).
ESME_RINVMSGLEN = 0x01
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62


# _PER_MESSAGE_NOTE: OutboundSms, SendResult and StatusReport are built once per message per
# step (send, its answer, the report). Nobody changes them after building them, but they are
# not declared frozen: a frozen dataclass sets every field through object.__setattr__, which
# doubled their cost. They compare and hash by their fields as before.


@dataclass(slots=True, unsafe_hash=True)  # see _PER_MESSAGE_NOTE
class OutboundSms:
    """One message for one recipient, as the gateway hands it to an adapter."""

    message_id: str  # the gateway's id; use it as the provider's client reference where one exists
    source: str  # sender: alphanumeric name or number, as the ESME gave it
    destination: str  # digits only, international format without '+'
    text: str  # decoded text (long messages already joined)
    unicode: bool = False  # True when the text needs UCS2 (data_coding 8 or non-GSM characters)
    flash: bool = False  # message class 0
    schedule_at: datetime | None = None  # UTC, timezone-aware
    valid_until: datetime | None = None  # UTC, timezone-aware
    # The gateway may have sent it before: it resumes the message after a restart, or carries on
    # for a gateway process that died, and that process's request may have reached the provider.
    # An adapter with a way to check (a client reference, a duplicate rule) checks before sending.
    maybe_sent: bool = False


class ProviderError(Exception):
    """A classified failure of one request or one recipient.

    `command_status` is the SMPP status for `ack = "provider"` mode; `err` is the 3-character
    receipt `err:` field for store-and-forward mode. `detail` is for logs: never put an API
    key, token or password in it.
    """

    retryable = False

    def __init__(
        self,
        detail: str,
        *,
        command_status: int = ESME_RSYSERR,
        err: str = "000",
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.command_status = command_status
        self.err = err
        self.retry_after = retry_after
        self.http_status = http_status


class Retryable(ProviderError):
    """Timeouts, connection errors, 5xx, 429 (with its Retry-After): the gateway retries later.

    `maybe_sent` is True when the request may have reached the provider and been acted on
    (read timeout, connection reset, 5xx): an adapter with a way to check (a client
    reference, a duplicate window) should check before sending again.
    """

    retryable = True

    def __init__(self, detail: str, *, maybe_sent: bool = False, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.maybe_sent = maybe_sent


class Permanent(ProviderError):
    """The provider refused this message for good: invalid number, sender, text, no credit…"""


class Misconfigured(Permanent):
    """Our side is wrong (bad API key, 401/403, unknown account): RSYSERR, an error log and a metric.

    Never reported to the ESME as a bind error.
    """


@dataclass(slots=True, unsafe_hash=True)  # see _PER_MESSAGE_NOTE
class SendResult:
    """What became of one OutboundSms: a provider id, or a classified error."""

    message_id: str
    provider_id: str | None = None
    error: ProviderError | None = None
    # The status the send answer already implies (ENROUTE for accepted/queued/sent).
    state: int = ENROUTE
    provider_status: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True, unsafe_hash=True)  # see _PER_MESSAGE_NOTE
class StatusReport:
    """A status the provider reported for one message (poll answer or webhook)."""

    provider_id: str
    state: int  # SMPP message_state, from the adapter's one status table
    provider_status: str  # the provider's own word, for logs and the receipt err: mapping
    err: str = "000"  # 3 characters for the receipt err: field
    done_at: datetime | None = None  # when the provider says the state was reached (UTC)
    message_id: str | None = None  # our id, where the provider echoes our reference
    destination: str | None = None  # where one provider id covers several recipients

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True, slots=True)
class Inbound:
    """A mobile-originated message reported by the provider."""

    source: str  # the sender's number (digits)
    destination: str  # our number / SIM / short code that received it
    text: str
    provider_id: str = ""  # for de-duplication
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    amount: float
    currency: str  # ISO code, or a unit word such as "SMS" or "CREDITS"


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    batch_size: int = 1  # recipients one send request may carry
    max_concurrency: int = 4  # requests in flight at once
    requests_per_second: float | None = None  # the provider's documented limit, if any
    max_text_length: int | None = None  # characters, if documented
    poll_batch_size: int = 1  # ids one status request may carry


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An HTTP request that reached POST /webhooks/<provider-name>, already authenticated."""

    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased
    query: Mapping[str, Sequence[str]]
    body: bytes
    remote_addr: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    poll: bool = False  # poll() works
    webhooks: bool = False  # parse_webhook() understands DLR callbacks
    inbound_poll: bool = False  # inbound() works
    inbound_webhook: bool = False  # parse_webhook() may return Inbound
    balance: bool = False
    senders: bool = False
    cancel: bool = False
    schedule: bool = False  # the provider can hold a message until schedule_at
    flash: bool = False
    unicode_flag: bool = False  # the API has an explicit unicode/UCS2 switch


class NotSupported(Exception):
    """The provider's API has no such call."""


@runtime_checkable
class Provider(Protocol):
    name: str  # the table name in the config ([providers.<name>])
    type: str  # adapter type (smsfly, smsclub, smsend, floppysend, smspartner, simulator)
    limits: ProviderLimits
    capabilities: Capabilities

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        """Send up to limits.batch_size messages; one SendResult per message, in order.

        A failure of the whole request raises Retryable/Permanent/Misconfigured; a failure
        of some recipients comes back in their SendResult.error.
        """
        ...

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        """Current status of up to limits.poll_batch_size messages; unknown ids are left out."""
        ...

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        """Turn a callback into reports; raise ValueError for a body it cannot read."""
        ...

    async def balance(self) -> list[Balance]: ...

    async def inbound(self) -> list[Inbound]: ...

    async def senders(self) -> list[str]: ...

    async def cancel(self, provider_id: str) -> bool: ...

    async def close(self) -> None: ...


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Parse an HTTP Retry-After header given in seconds; anything else gives the default."""
    if not value:
        return default
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return default
