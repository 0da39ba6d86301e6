"""A message's trail: every step it took, with its time, for the operator (GET /admin/messages/<id>,
`smppgw message <id>`). The common steps come from the message row's own columns (received,
stored, sent, final state, receipt queued and answered); the rest from the trail events the
gateway wrote beside it (failed attempts, failovers, intermediate statuses, receipt retries)."""

from __future__ import annotations

from smppgw.smpp.receipt import STAT_BY_STATE
from smppgw.store.base import QUEUED, RECEIPT_NAMES, RECEIPT_NONE, MessageRecord, TrailEvent


def timeline(record: MessageRecord, events: list[TrailEvent]) -> list[TrailEvent]:
    """The row's milestones and the stored events, oldest first (a stable sort: steps written
    at the same instant keep their causal order)."""
    r = record
    steps = [
        TrailEvent(
            r.submitted_at,
            "received",
            {"account": r.account, "source": r.source, "destination": r.destination},
        )
    ]
    if r.stored_at is not None:
        steps.append(TrailEvent(r.stored_at, "stored", {}))
    if r.sent_at is not None:
        steps.append(TrailEvent(r.sent_at, "sent", {"provider": r.provider, "provider_id": r.provider_id}))
    steps.extend(events)
    if r.state >= 2 and r.done_at is not None:
        # done_at is the provider's own time (the receipt's done date); a provider clock behind
        # ours must not put the final state before the send it answers
        at = max(r.done_at, max(s.at for s in steps))
        final: dict[str, object] = {"stat": STAT_BY_STATE.get(r.state, r.state), "err": r.err}
        if at != r.done_at:
            final["done_date"] = r.done_at
        steps.append(TrailEvent(at, "final", final))
        if r.receipt != RECEIPT_NONE:
            steps.append(TrailEvent(at, "receipt_queued", {}))
    if r.receipt_at is not None:
        name = RECEIPT_NAMES.get(r.receipt, str(r.receipt))
        steps.append(
            TrailEvent(r.receipt_at, f"receipt_{name}", {"to": r.receipt_to} if r.receipt_to else {})
        )
    return sorted(steps, key=lambda e: e.at)


def state_name(record: MessageRecord) -> str:
    if record.state == QUEUED:
        return "QUEUED"
    return STAT_BY_STATE.get(record.state, str(record.state))
