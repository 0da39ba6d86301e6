"""The session state table (smpp34.md §1.1-§1.2): what an ESME may send in each state, the
status that refuses it, and what the server may send."""

from __future__ import annotations

import pytest

from smppgw.smpp import pdu as p
from smppgw.smpp import session
from smppgw.smpp.constants import CommandId, Status
from smppgw.smpp.session import (
    BIND_STATE,
    State,
    can_send,
    check,
    next_state,
    receives_deliveries,
    transmits,
)

BOUND = (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)
BINDS = (CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER)


def test_submit_sm_before_bind_is_rinvbndsts() -> None:
    assert check(State.OPEN, CommandId.SUBMIT_SM) == Status.ESME_RINVBNDSTS


def test_submit_sm_on_a_receiver_bind_is_rinvbndsts() -> None:
    assert check(State.BOUND_RX, CommandId.SUBMIT_SM) == Status.ESME_RINVBNDSTS


@pytest.mark.parametrize("state", [State.BOUND_TX, State.BOUND_TRX])
def test_submit_sm_on_a_transmitting_bind_is_allowed(state: State) -> None:
    assert check(state, CommandId.SUBMIT_SM) == Status.ESME_ROK


@pytest.mark.parametrize("state", BOUND)
@pytest.mark.parametrize("bind", BINDS)
def test_second_bind_is_ralybnd(state: State, bind: int) -> None:
    assert check(state, bind) == Status.ESME_RALYBND


@pytest.mark.parametrize("state", [State.OPEN, *BOUND, State.UNBOUND])
def test_enquire_link_is_answered_in_every_live_state_including_open(state: State) -> None:
    assert check(state, CommandId.ENQUIRE_LINK) == Status.ESME_ROK


def test_nothing_is_accepted_once_closed() -> None:
    for cid in CommandId:
        assert check(State.CLOSED, cid) != Status.ESME_ROK
        assert not can_send(State.CLOSED, cid)


def test_unbind_before_bind_is_rinvbndsts() -> None:
    assert check(State.OPEN, CommandId.UNBIND) == Status.ESME_RINVBNDSTS
    for state in BOUND:
        assert check(state, CommandId.UNBIND) == Status.ESME_ROK


@pytest.mark.parametrize(
    "cid", [CommandId.QUERY_SM, CommandId.CANCEL_SM, CommandId.REPLACE_SM, CommandId.SUBMIT_MULTI]
)
def test_message_operations_need_a_transmitting_bind(cid: int) -> None:
    assert [check(s, cid) for s in (State.OPEN, *BOUND)] == [
        Status.ESME_RINVBNDSTS,
        Status.ESME_ROK,
        Status.ESME_RINVBNDSTS,
        Status.ESME_ROK,
    ]


def test_data_sm_is_allowed_on_every_bind() -> None:
    assert all(check(s, CommandId.DATA_SM) == Status.ESME_ROK for s in BOUND)
    assert check(State.OPEN, CommandId.DATA_SM) == Status.ESME_RINVBNDSTS


def test_outbind_and_deliver_sm_from_an_esme_are_rinvcmdid() -> None:
    for state in (State.OPEN, *BOUND):
        assert check(state, CommandId.OUTBIND) == Status.ESME_RINVCMDID
        assert check(state, CommandId.DELIVER_SM) == Status.ESME_RINVCMDID
    assert p.response_for(p.Outbind(4)) == p.GenericNack(4, Status.ESME_RINVCMDID)


def test_unknown_command_id_is_rinvcmdid() -> None:
    assert check(State.BOUND_TRX, 0x1234) == Status.ESME_RINVCMDID


def test_responses_to_our_requests_are_expected_only_where_we_send_requests() -> None:
    assert check(State.BOUND_RX, CommandId.DELIVER_SM_RESP) == Status.ESME_ROK
    assert check(State.BOUND_TRX, CommandId.DELIVER_SM_RESP) == Status.ESME_ROK
    assert check(State.UNBOUND, CommandId.DELIVER_SM_RESP) == Status.ESME_ROK  # in flight at unbind
    assert check(State.BOUND_TX, CommandId.DELIVER_SM_RESP) != Status.ESME_ROK
    assert check(State.OPEN, CommandId.ENQUIRE_LINK_RESP) != Status.ESME_ROK
    for state in BOUND:
        for cid in (CommandId.ENQUIRE_LINK_RESP, CommandId.UNBIND_RESP, CommandId.GENERIC_NACK):
            assert check(state, cid) == Status.ESME_ROK
    assert check(State.BOUND_TX, CommandId.SUBMIT_SM_RESP) == Status.ESME_RINVCMDID


def test_deliver_sm_may_be_sent_only_to_receivers() -> None:
    assert [can_send(s, CommandId.DELIVER_SM) for s in (State.OPEN, *BOUND, State.UNBOUND)] == [
        False,
        False,
        True,
        True,
        False,
    ]
    assert receives_deliveries(State.BOUND_RX) and receives_deliveries(State.BOUND_TRX)
    assert not receives_deliveries(State.BOUND_TX) and not receives_deliveries(State.OPEN)


def test_enquire_link_and_unbind_may_be_sent_only_when_bound() -> None:
    for cid in (CommandId.ENQUIRE_LINK, CommandId.UNBIND):
        assert all(can_send(s, cid) for s in BOUND)
        assert not can_send(State.OPEN, cid) and not can_send(State.UNBOUND, cid)


def test_our_responses_may_go_out_in_any_live_state() -> None:
    assert can_send(State.OPEN, CommandId.SUBMIT_SM_RESP)  # the RINVBNDSTS refusal
    assert can_send(State.OPEN, CommandId.GENERIC_NACK)
    assert can_send(State.UNBOUND, CommandId.UNBIND_RESP)
    assert not can_send(State.BOUND_TRX, CommandId.SUBMIT_SM)
    assert not can_send(State.OPEN, CommandId.BIND_TRANSMITTER)


def test_transmits() -> None:
    assert [transmits(s) for s in (State.OPEN, *BOUND)] == [False, True, False, True]


def test_successful_bind_moves_open_to_its_bound_state() -> None:
    for cid, state in BIND_STATE.items():
        assert next_state(State.OPEN, cid) is state
        assert next_state(State.OPEN, cid, Status.ESME_RINVPASWD) is State.OPEN
    assert BIND_STATE == {
        CommandId.BIND_TRANSMITTER: State.BOUND_TX,
        CommandId.BIND_RECEIVER: State.BOUND_RX,
        CommandId.BIND_TRANSCEIVER: State.BOUND_TRX,
    }


def test_unbind_leaves_a_bound_session_unbound() -> None:
    assert next_state(State.BOUND_TRX, CommandId.UNBIND) is State.UNBOUND
    assert next_state(State.BOUND_TX, CommandId.UNBIND_RESP) is State.UNBOUND
    assert next_state(State.BOUND_TX, CommandId.BIND_TRANSCEIVER) is State.BOUND_TX
    assert next_state(State.BOUND_TX, CommandId.SUBMIT_SM) is State.BOUND_TX
    assert next_state(State.CLOSED, CommandId.BIND_TRANSCEIVER) is State.CLOSED


def test_table_has_a_row_for_every_command() -> None:
    assert set(session._TABLE) == set(CommandId)
