"""Which state changes produce a receipt, and the deliver_sm a receipt or an MO message becomes
(as an outbox record: columns, built into a PDU only when it is sent)."""

from __future__ import annotations

from datetime import UTC, datetime

from smppgw.providers.base import Inbound
from smppgw.smpp.constants import ESM_DELIVERY_RECEIPT, MessageState
from smppgw.smpp.receipt import STAT_BY_STATE, Receipt, format_receipt
from smppgw.smpp.text import gsm_encode, is_gsm
from smppgw.store.base import MessageRecord, OutboxRecord

FINAL = frozenset(s for s in range(2, 9))


def wants_receipt(registered_delivery: int, state: int) -> bool:
    """registered_delivery bits 1-0: 01 every final state, 10 failures only, 11 (5.0 binds)
    success only; bit 4 (0x10): intermediate notifications (ENROUTE) too."""
    if state == MessageState.ENROUTE:
        return bool(registered_delivery & 0x10)
    mode = registered_delivery & 0x03
    if mode == 1:
        return True
    if mode == 2:
        return state != MessageState.DELIVERED
    if mode == 3:
        return state == MessageState.DELIVERED
    return False


def build_receipt(msg: MessageRecord, state: int, now: float, on_row: bool = False) -> OutboxRecord:
    """The receipt for `msg` reaching `state`. A final receipt rides on its message row
    (`on_row`: no outbox row of its own); an intermediate one is an outbox row."""
    done = msg.done_at if msg.done_at is not None else now
    text = format_receipt(
        Receipt(
            id=msg.id,
            sub=1,
            dlvrd=1 if state == MessageState.DELIVERED else 0,
            submit_date=datetime.fromtimestamp(msg.submitted_at, UTC),
            done_date=datetime.fromtimestamp(done, UTC),
            stat=STAT_BY_STATE[state],
            err=msg.err,
            text=msg.text[:20],
        )
    )
    return OutboxRecord(
        key=f"{msg.id}/{state}",
        account=msg.account,
        message_id=msg.id,
        state=state,
        source_addr=msg.destination,
        source_ton=msg.dest_ton,
        source_npi=msg.dest_npi,
        dest_addr=msg.source,
        dest_ton=msg.source_ton,
        dest_npi=msg.source_npi,
        esm_class=ESM_DELIVERY_RECEIPT,
        data_coding=0,
        short_message=text,
        created_at=now,
        user_message_reference=msg.user_message_reference,
        on_row=on_row,
    )


def build_mo(
    key: str, account: str, message_id: str, item: Inbound, now: float, dc0_charset: str = "gsm"
) -> OutboxRecord:
    """An MO message from a provider as a deliver_sm to the account: data_coding 0 in the
    charset the account reads it as, when the text fits; UCS2 otherwise."""
    data, dc = item.text.encode("utf-16-be"), 8
    if dc0_charset.startswith("gsm"):
        if is_gsm(item.text):
            data, dc = gsm_encode(item.text), 0  # unpacked: packed septets are rare over SMPP
    else:
        try:
            data, dc = item.text.encode("latin-1" if dc0_charset == "latin-1" else "ascii"), 0
        except UnicodeEncodeError:
            pass
    return OutboxRecord(
        key=key,
        account=account,
        message_id=message_id,
        state=0,
        source_addr=item.source,
        source_ton=1,
        source_npi=1,
        dest_addr=item.destination,
        dest_ton=1 if item.destination.isdigit() and len(item.destination) > 6 else 0,
        dest_npi=1,
        esm_class=0,
        data_coding=dc,
        short_message=data,
        created_at=now,
    )
