"""Which state changes produce a receipt, and the deliver_sm a receipt or an MO message becomes
(as an outbox record: columns, built into a PDU only when it is sent)."""

from __future__ import annotations

from smppgw.providers.base import Inbound
from smppgw.smpp.constants import ESM_DELIVERY_RECEIPT, MessageState
from smppgw.smpp.receipt import STAT_BY_STATE, receipt_text
from smppgw.smpp.text import gsm_encode, is_gsm
from smppgw.store.base import MessageRecord, OutboxRecord

FINAL = frozenset(s for s in range(2, 9))


_ENROUTE = int(MessageState.ENROUTE)  # plain ints: an IntEnum compare costs several times more
_DELIVERED = int(MessageState.DELIVERED)


def wants_receipt(registered_delivery: int, state: int) -> bool:
    """registered_delivery bits 1-0: 01 every final state, 10 failures only, 11 (5.0 binds)
    success only; bit 4 (0x10): intermediate notifications (ENROUTE) too."""
    if state == _ENROUTE:
        return bool(registered_delivery & 0x10)
    mode = registered_delivery & 0x03
    if mode == 1:
        return True
    if mode == 2:
        return state != _DELIVERED
    if mode == 3:
        return state == _DELIVERED
    return False


def build_receipt(msg: MessageRecord, state: int, now: float, on_row: bool = False) -> OutboxRecord:
    """The receipt for `msg` reaching `state`. A final receipt rides on its message row
    (`on_row`: no outbox row of its own); an intermediate one is an outbox row."""
    done = msg.done_at if msg.done_at is not None else now
    mid = msg.id
    text = receipt_text(
        mid,
        1,
        1 if state == _DELIVERED else 0,
        msg.submitted_at,
        done,
        STAT_BY_STATE[state],
        msg.err,
        msg.text,
    )
    # positional, in OutboxRecord's field order: key, account, message_id, state, source_addr,
    # source_ton, source_npi, dest_addr, dest_ton, dest_npi, esm_class, data_coding,
    # short_message, created_at, user_message_reference, network_error, on_row
    return OutboxRecord(
        f"{mid}/{state}",
        msg.account,
        mid,
        state,
        msg.destination,
        msg.dest_ton,
        msg.dest_npi,
        msg.source,
        msg.source_ton,
        msg.source_npi,
        ESM_DELIVERY_RECEIPT,
        0,
        text,
        now,
        msg.user_message_reference,
        None,
        on_row,
    )


def final_receipt(msg: MessageRecord) -> OutboxRecord:
    """The final receipt a final message owes, built again from the message alone (after a
    restart, or by the process that took it over)."""
    return build_receipt(msg, msg.state, msg.done_at or msg.submitted_at, on_row=True)


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
