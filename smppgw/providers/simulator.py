"""The built-in simulator provider: no HTTP, outcomes from the config.

Options ([providers.<name>] with type = "simulator"):
- `delay`: seconds from acceptance to the final status (default 1.0; 0 for benchmarks).
- `enroute`: whether acceptance counts as an ENROUTE status report, which gives an
  intermediate receipt to ESMEs that ask for one (registered_delivery bit 4). Default true.
- `outcomes`: weights of final states, e.g. { DELIVRD = 90, UNDELIV = 5, EXPIRED = 3, REJECTD = 2 }.
- `seed`: the outcome of a message is drawn from (seed, message id), so it is the same after
  a restart and from run to run.
- `suffixes`: destination suffix → stat word, checked before the weights (longest first),
  e.g. { "0002" = "UNDELIV" }, so a test or a demo can pick an outcome per number.

The provider id carries the acceptance time and the outcome, so `poll` can answer for a
message accepted before a restart without any state.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from twisted.internet.interfaces import IReactorTime

from smppgw.config import ProviderSettings
from smppgw.providers.base import (
    DELIVERED,
    ENROUTE,
    EXPIRED,
    REJECTED,
    UNDELIVERABLE,
    Balance,
    Capabilities,
    Inbound,
    NotSupported,
    OutboundSms,
    ProviderLimits,
    SendResult,
    StatusReport,
    WebhookRequest,
)

STATES = {"DELIVRD": DELIVERED, "UNDELIV": UNDELIVERABLE, "EXPIRED": EXPIRED, "REJECTD": REJECTED}
ERR = {"DELIVRD": "000", "UNDELIV": "001", "EXPIRED": "002", "REJECTD": "003"}


class Simulator:
    type = "simulator"
    capabilities = Capabilities(poll=True, balance=True)
    pushes_reports = True  # reports arrive through report_sink; poll is for resumed messages

    def __init__(self, settings: ProviderSettings, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.name = settings.name
        self.clock = clock
        self.delay = float(settings.get("delay", (int, float), 1.0))
        self.enroute = settings.get("enroute", bool, True)
        self.seed = settings.get("seed", int, 0)
        outcomes = settings.get("outcomes", dict, {"DELIVRD": 1})
        suffixes = settings.get("suffixes", dict, {})
        for table, key in ((outcomes, "outcomes"), (suffixes, "suffixes")):
            for k, v in table.items():
                word = v if key == "suffixes" else k
                if word not in STATES:
                    raise settings.error(key, f"stat words among {', '.join(STATES)}, got {word!r}")
        for k, w in outcomes.items():
            if not isinstance(w, int | float) or isinstance(w, bool) or w < 0:
                raise settings.error(f"outcomes.{k}", f"a weight >= 0, got {w!r}")
        if not sum(outcomes.values()):
            raise settings.error("outcomes", "at least one weight > 0")
        if self.delay < 0:
            raise settings.error("delay", f"seconds >= 0, got {self.delay}")
        self._words = list(outcomes)
        self._cumulative = list(itertools.accumulate(float(outcomes[w]) for w in self._words))
        self._total = self._cumulative[-1]
        self._suffixes = sorted(suffixes.items(), key=lambda kv: -len(kv[0]))
        self.limits = ProviderLimits(
            batch_size=settings.get("batch_size", int, 1000),
            max_concurrency=settings.get("max_concurrency", int, 4),
            poll_batch_size=1000,
        )
        self.report_sink: Callable[[StatusReport], None] | None = None
        self.sent = 0
        self._done_at: tuple[str, datetime] = ("", datetime.fromtimestamp(0, UTC))  # last (ms, done)

    def outcome(self, message_id: str, destination: str) -> str:
        for suffix, word in self._suffixes:
            if destination.endswith(suffix):
                return word
        if len(self._words) == 1:
            return self._words[0]  # one outcome: nothing to draw
        # a hash, not a seeded Random per message: the same draw for the same (seed, id), cheaply
        point = zlib.crc32(f"{self.seed}:{message_id}".encode()) / 0xFFFFFFFF * self._total
        return self._words[min(bisect.bisect_right(self._cumulative, point), len(self._words) - 1)]

    async def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        ms = int(self.clock.seconds() * 1000)
        out = []
        state = ENROUTE if self.enroute else 0
        outcome = self.outcome
        for sms in batch:
            mid = sms.message_id
            pid = f"{mid}.{ms}.{outcome(mid, sms.destination)}"
            out.append(SendResult(mid, pid, None, state, "ACCEPTED"))
        if self.report_sink is not None:
            self.clock.callLater(self.delay, self._report, [r.provider_id for r in out])  # one timer a batch
        self.sent += len(batch)
        return out

    def _report(self, pids: list[str]) -> None:
        for pid in pids:
            if self.report_sink is None:
                return
            self.report_sink(self._final(pid))

    def _final(self, pid: str) -> StatusReport:
        message_id, ms, word = pid.rsplit(".", 2)
        if self._done_at[0] == ms:
            done = self._done_at[1]  # every id of a batch carries the same time
        else:
            done = datetime.fromtimestamp(int(ms) / 1000 + self.delay, UTC)
            self._done_at = (ms, done)
        return StatusReport(pid, STATES[word], word, ERR[word], done, message_id)

    async def poll(self, provider_ids: Sequence[str]) -> list[StatusReport]:
        now = self.clock.seconds()
        out = []
        for pid in provider_ids:
            try:
                _, ms, word = pid.rsplit(".", 2)
                due = int(ms) / 1000 + self.delay
            except ValueError:
                continue  # not one of ours: unknown ids are left out
            if word not in STATES:
                continue
            out.append(self._final(pid) if now >= due else StatusReport(pid, ENROUTE, "ENROUTE"))
        return out

    def parse_webhook(self, request: WebhookRequest) -> list[StatusReport | Inbound]:
        raise NotSupported("the simulator has no webhooks")

    async def balance(self) -> list[Balance]:
        return [Balance(float(1_000_000 - self.sent), "SMS")]

    async def inbound(self) -> list[Inbound]:
        raise NotSupported("the simulator has no inbound messages")

    async def senders(self) -> list[str]:
        raise NotSupported("the simulator accepts any sender")

    async def cancel(self, provider_id: str) -> bool:
        raise NotSupported("the simulator cannot cancel")

    async def close(self) -> None:
        self.report_sink = None
