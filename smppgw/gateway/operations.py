"""query_sm, cancel_sm, replace_sm, submit_multi and data_sm on the gateway side.

Each operation answers through `answer(command_status, resp_fields)`; the session turns that
into the resp PDU. cancel_sm and replace_sm succeed while the gateway still holds the message
(scheduled, or waiting for a provider request slot); a message already at a provider whose
API can delete it (smSend's scheduled orders) is cancelled there. Otherwise RCANCELFAIL /
RREPLACEFAIL; an id this account never had is RINVMSGID. Their resps go out after the change
is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from smppgw.aio import start
from smppgw.config import Account
from smppgw.gateway.submit import Refused, decode_payload, parse_times, prepare
from smppgw.providers.base import DELETED
from smppgw.smpp.constants import MessageState, Status, Tag
from smppgw.smpp.pdu import (
    CancelSm,
    DataSm,
    DistributionList,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    UnsuccessSme,
    tlv_int,
)
from smppgw.smpp.text import TextError, unpack_septets
from smppgw.smpp.timefmt import format_relative, format_smpp_time
from smppgw.store.base import QUEUED, MessageRecord, ReplaceMessage

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from smppgw.gateway.held import Held
    from smppgw.providers.base import Provider
    from smppgw.store.base import Store

Answer = Callable[[int, dict[str, Any]], None]
_NOTHING: dict[str, Any] = {}


class Operations:
    """query_sm, cancel_sm, replace_sm, submit_multi and data_sm, over the gateway's messages.

    The gateway hands over what these need of it: its unfinished messages (`live`, by id), the
    store, the clock, the provider adapters, the held (scheduled) messages, and four steps of the
    message's life: `finalize` (the one place a message ends), `dispatch` (on its way again),
    `submit` (a new message, as from submit_sm) and `take_back` (out of its way to a provider,
    if it is not in a request yet).
    """

    def __init__(
        self,
        *,
        live: dict[str, MessageRecord],
        store: Store,
        clock: IReactorTime,
        providers: dict[str, Provider],
        held: Held,
        finalize: Callable[[MessageRecord, int, str], None],
        dispatch: Callable[[MessageRecord], None],
        submit: Callable[..., None],
        take_back: Callable[[MessageRecord], bool],
    ) -> None:
        self.live, self.store, self.clock, self.providers, self.held = live, store, clock, providers, held
        self._finalize, self._dispatch, self._submit, self._take_back = finalize, dispatch, submit, take_back

    # -- query_sm -----------------------------------------------------------------------------

    def query(self, account: Account, pdu: QuerySm, version: int, answer: Answer) -> None:
        record = self.live.get(pdu.message_id)
        if record is not None:
            answer(*self._query_answer(account, record, version))
            return

        def found(stored: MessageRecord | None) -> None:
            answer(*self._query_answer(account, stored, version))

        self.store.get_message(pdu.message_id, found)

    def _query_answer(
        self, account: Account, record: MessageRecord | None, version: int
    ) -> tuple[int, dict[str, Any]]:
        if record is None or record.account != account.system_id:
            return Status.ESME_RINVMSGID, _NOTHING
        state = record.state
        if state == QUEUED:
            # 3.4 has no SCHEDULED; a 5.0 bind hears it for a message held until later.
            held = self.held.holds(record.id)
            state = MessageState.SCHEDULED if version >= 0x50 and held else MessageState.ENROUTE
        final = state >= 2 and record.done_at is not None
        return Status.ESME_ROK, {
            "message_id": record.id,
            "final_date": _final_date(record.done_at) if final else "",
            "message_state": state,
            "error_code": int(record.err) & 0xFF if record.err.isdigit() else 0,
        }

    # -- cancel_sm ----------------------------------------------------------------------------

    def cancel(self, account: Account, pdu: CancelSm, answer: Answer) -> None:
        if not pdu.message_id:
            self._cancel_matching(account, pdu, answer)
            return
        record = self.live.get(pdu.message_id)
        if record is None or record.account != account.system_id:
            self._not_live(account, pdu.message_id, Status.ESME_RCANCELFAIL, answer)
            return
        if pdu.source_addr and pdu.source_addr != record.source:
            answer(Status.ESME_RCANCELFAIL, _NOTHING)
            return
        if self._take_back(record):
            self._finalize(record, DELETED, "000")
            self._after_commit(answer, Status.ESME_ROK)
            return
        provider = self.providers.get(record.provider)
        if record.state == 1 and record.provider_id and provider is not None and provider.capabilities.cancel:
            start(self._cancel_at_provider(record, answer))
            return
        answer(Status.ESME_RCANCELFAIL, _NOTHING)

    def _cancel_matching(self, account: Account, pdu: CancelSm, answer: Answer) -> None:
        """No message_id: every message still held from this source to this destination (§4.9)."""
        dest = pdu.destination_addr.lstrip("+")
        matching = [
            r
            for r in list(self.live.values())
            if r.account == account.system_id and r.source == pdu.source_addr and r.destination == dest
        ]
        taken = [r for r in matching if self._take_back(r)]
        for r in taken:
            self._finalize(r, DELETED, "000")
        if taken:
            self._after_commit(answer, Status.ESME_ROK)
        else:
            answer(Status.ESME_RCANCELFAIL, _NOTHING)

    async def _cancel_at_provider(self, record: MessageRecord, answer: Answer) -> None:
        try:
            ok = await self.providers[record.provider].cancel(record.provider_id)
        except Exception:  # NotSupported, ProviderError, transport trouble: it was not cancelled
            ok = False
        if ok and record.state < 2:
            self._finalize(record, DELETED, "000")
            self._after_commit(answer, Status.ESME_ROK)
        else:
            answer(Status.ESME_RCANCELFAIL, _NOTHING)

    def _not_live(self, account: Account, message_id: str, fail: int, answer: Answer) -> None:
        def found(stored: MessageRecord | None) -> None:
            known = stored is not None and stored.account == account.system_id
            answer(fail if known else Status.ESME_RINVMSGID, _NOTHING)

        self.store.get_message(message_id, found)

    def _after_commit(self, answer: Answer, status: int) -> None:
        # The store commits in order: an empty write's callback runs after the writes before it.
        self.store.write([], lambda error: answer(Status.ESME_RSYSERR if error else status, _NOTHING))

    # -- replace_sm ---------------------------------------------------------------------------

    def replace(self, account: Account, pdu: ReplaceSm, version: int, answer: Answer) -> None:
        record = self.live.get(pdu.message_id)
        if record is None or record.account != account.system_id:
            self._not_live(account, pdu.message_id, Status.ESME_RREPLACEFAIL, answer)
            return
        try:
            text, at, until = self._replacement(account, pdu, record, version)
        except Refused as e:
            answer(e.status, _NOTHING)
            return
        if (pdu.source_addr and pdu.source_addr != record.source) or not self._take_back(record):
            answer(Status.ESME_RREPLACEFAIL, _NOTHING)
            return
        record.text = text
        record.registered_delivery = pdu.registered_delivery
        record.schedule_at = at if pdu.schedule_delivery_time else record.schedule_at
        record.valid_until = until if pdu.validity_period else record.valid_until
        self.store.write([ReplaceMessage(record)], lambda error: None)
        self._after_commit(answer, Status.ESME_ROK)
        self._dispatch(record)  # held again for its (new) time, expired, or on its way

    def _replacement(
        self, account: Account, pdu: ReplaceSm, record: MessageRecord, version: int
    ) -> tuple[str, float | None, float | None]:
        rd = pdu.registered_delivery
        if version < 0x50 and (rd & 0x03 == 0x03 or rd & 0xE0):
            raise Refused(Status.ESME_RINVREGDLVFLG, "registered_delivery uses reserved bits")
        if pdu.sm_default_msg_id:
            raise Refused(Status.ESME_RINVDFTMSGID, "no canned messages here")
        at, until = parse_times(pdu.schedule_delivery_time, pdu.validity_period, self.clock.seconds())
        packed = account.dc0_charset == "gsm-packed" and record.data_coding in (0, 0xF0, 0xF1, 0xF2, 0xF3)
        try:
            sm = unpack_septets(pdu.short_message) if packed else pdu.short_message
            text = decode_payload(sm, record.data_coding, packed, account.dc0_charset, account.dc1_charset)
        except TextError as e:
            raise Refused(Status.ESME_RREPLACEFAIL, f"new text does not decode: {e}") from None
        return text, at, until

    # -- submit_multi -------------------------------------------------------------------------

    def submit_multi(self, account: Account, pdu: SubmitMulti, version: int, answer: Answer) -> None:
        """Every SME destination is a message of its own, with its own id and receipt; the resp
        carries the first accepted destination's id, the others follow it in destination order."""
        if not pdu.dest_addresses:
            answer(Status.ESME_RINVNUMDESTS, _NOTHING)
            return
        first_sme = next((d for d in pdu.dest_addresses if isinstance(d, SmeAddress)), None)
        if first_sme is not None:
            # Checks of the message itself, on a destination that cannot fail: they hold for all.
            probe = replace(
                _as_submit(pdu, first_sme), destination_addr="000", dest_addr_ton=0, dest_addr_npi=0
            )
            try:
                prepare(probe, version, self.clock.seconds(), account.dc0_charset, account.dc1_charset)
            except Refused as e:
                answer(e.status, _NOTHING)
                return
        results: list[tuple[int, str] | None] = [None] * len(pdu.dest_addresses)
        left = [len(pdu.dest_addresses)]

        def finish() -> None:
            ids = [mid for status, mid in results if status == Status.ESME_ROK]  # type: ignore[misc]
            failed = [
                (dest, status)
                for dest, (status, _) in zip(pdu.dest_addresses, results, strict=True)  # type: ignore[misc]
                if status != Status.ESME_ROK
            ]
            if not ids:
                first = failed[0][1]
                answer(first if all(s == first for _, s in failed) else Status.ESME_RSUBMITFAIL, _NOTHING)
                return
            unsuccess = tuple(_unsuccess(dest, status) for dest, status in failed)
            answer(Status.ESME_ROK, {"message_id": ids[0], "unsuccess_sme": unsuccess})

        def reply_for(i: int) -> Callable[[int, str], None]:
            def reply(status: int, message_id: str) -> None:
                results[i] = (status, message_id)
                left[0] -= 1
                if not left[0]:
                    finish()

            return reply

        for i, dest in enumerate(pdu.dest_addresses):
            if isinstance(dest, DistributionList):
                reply_for(i)(Status.ESME_RCNTSUBDL, "distribution lists are not supported")
                continue
            self._submit(account, _as_submit(pdu, dest), version, reply_for(i), ack_when_stored=True)

    # -- data_sm ------------------------------------------------------------------------------

    def data_sm(self, account: Account, pdu: DataSm, version: int, reply: Callable[[int, str], None]) -> None:
        """A submit whose text is in message_payload; qos_time_to_live becomes the validity."""
        validity = ""
        ttl = tlv_int(pdu, Tag.QOS_TIME_TO_LIVE)
        if ttl:
            try:
                validity = format_relative(timedelta(seconds=ttl))
            except ValueError:
                validity = ""  # beyond what a relative time says: no validity of our own
        sm = SubmitSm(
            pdu.sequence_number,
            0,
            pdu.service_type,
            pdu.source_addr_ton,
            pdu.source_addr_npi,
            pdu.source_addr,
            pdu.dest_addr_ton,
            pdu.dest_addr_npi,
            pdu.destination_addr,
            pdu.esm_class,
            0,
            0,
            "",
            validity,
            pdu.registered_delivery,
            0,
            pdu.data_coding,
            0,
            b"",
            pdu.tlvs,
        )
        if pdu.tlv(Tag.MESSAGE_PAYLOAD) is None:
            reply(Status.ESME_RMISSINGOPTPARAM, "data_sm without message_payload")
            return
        self._submit(account, sm, version, reply)


def _final_date(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return format_smpp_time(datetime.fromtimestamp(ts, UTC))
    except ValueError:
        return ""


def _as_submit(pdu: SubmitMulti, dest: SmeAddress) -> SubmitSm:
    return SubmitSm(
        pdu.sequence_number,
        0,
        pdu.service_type,
        pdu.source_addr_ton,
        pdu.source_addr_npi,
        pdu.source_addr,
        dest.ton,
        dest.npi,
        dest.address,
        pdu.esm_class,
        pdu.protocol_id,
        pdu.priority_flag,
        pdu.schedule_delivery_time,
        pdu.validity_period,
        pdu.registered_delivery,
        pdu.replace_if_present_flag,
        pdu.data_coding,
        pdu.sm_default_msg_id,
        pdu.short_message,
        pdu.tlvs,
    )


def _unsuccess(dest: SmeAddress | DistributionList, status: int) -> UnsuccessSme:
    if isinstance(dest, DistributionList):
        return UnsuccessSme(0, 0, dest.name[:20], status)
    return UnsuccessSme(dest.ton, dest.npi, dest.address, status)
