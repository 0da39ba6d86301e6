"""The SMPP session state machine, seen from the SMSC (server) side.

Everything that decides whether a PDU is acceptable in a session state lives in this file, in
one table (`_TABLE`), next to the command_status that refuses it (smpp34.md §1.1-§1.2,
spec Table 2-1). The module knows nothing about sockets, timers or accounts: the server asks
`check(state, command_id)` for each PDU it receives, `can_send(state, command_id)` before it
sends one, and `next_state(...)` after it has answered.

States: OPEN (connected, not bound), BOUND_TX / BOUND_RX / BOUND_TRX, UNBOUND (an unbind was
sent or received; the session only finishes in-flight exchanges before it closes), CLOSED.
"""

from __future__ import annotations

from enum import Enum

from .constants import RESP, CommandId, Status


class State(Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"

    # Members are singletons compared by identity, so they hash by identity too: Enum's own
    # __hash__ hashes the name in Python code, on every lookup of the table below (every PDU).
    __hash__ = object.__hash__


_COLUMNS = (State.OPEN, State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX, State.UNBOUND, State.CLOSED)

# Cell values: what `check` answers for that PDU arriving from the ESME in that state.
OK = Status.ESME_ROK
NB = Status.ESME_RINVBNDSTS  # not allowed in this bind state (e.g. submit before bind, submit on RX)
AB = Status.ESME_RALYBND  # bind on a bound session
ID = Status.ESME_RINVCMDID  # never valid from an ESME (our direction only, or outbind)

_NEVER: frozenset[State] = frozenset()
_BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
_RECEIVERS = frozenset({State.BOUND_RX, State.BOUND_TRX})
_LIVE = frozenset(_COLUMNS) - {State.CLOSED}

# command_id: ((received in OPEN, TX, RX, TRX, UNBOUND, CLOSED), states in which we may send it)
#
# Responses to requests *we* sent (deliver_sm_resp, ...) are "OK" wherever we could have sent
# the request; elsewhere they are unsolicited and response_for() gives no answer to them anyway.
# Responses to requests the server never sends (submit_sm_resp, ...) are always RINVCMDID.
# Our own responses may go out in every live state: the refusal itself is a response.
_TABLE: dict[int, tuple[tuple[Status, Status, Status, Status, Status, Status], frozenset[State]]] = {
    #                                   OPEN TX  RX  TRX UNB CLOSED   we may send
    CommandId.BIND_RECEIVER:            ((OK, AB, AB, AB, NB, NB), _NEVER),
    CommandId.BIND_TRANSMITTER:         ((OK, AB, AB, AB, NB, NB), _NEVER),
    CommandId.BIND_TRANSCEIVER:         ((OK, AB, AB, AB, NB, NB), _NEVER),
    CommandId.OUTBIND:                  ((ID, ID, ID, ID, ID, ID), _NEVER),
    CommandId.UNBIND:                   ((NB, OK, OK, OK, OK, NB), _BOUND),
    CommandId.ENQUIRE_LINK:             ((OK, OK, OK, OK, OK, NB), _BOUND),
    CommandId.SUBMIT_SM:                ((NB, OK, NB, OK, NB, NB), _NEVER),
    CommandId.SUBMIT_MULTI:             ((NB, OK, NB, OK, NB, NB), _NEVER),
    CommandId.QUERY_SM:                 ((NB, OK, NB, OK, NB, NB), _NEVER),
    CommandId.CANCEL_SM:                ((NB, OK, NB, OK, NB, NB), _NEVER),
    CommandId.REPLACE_SM:               ((NB, OK, NB, OK, NB, NB), _NEVER),
    CommandId.DATA_SM:                  ((NB, OK, OK, OK, NB, NB), _RECEIVERS),
    CommandId.DELIVER_SM:               ((ID, ID, ID, ID, ID, ID), _RECEIVERS),
    CommandId.ALERT_NOTIFICATION:       ((ID, ID, ID, ID, ID, ID), _RECEIVERS),
    # responses to our requests
    CommandId.GENERIC_NACK:             ((NB, OK, OK, OK, OK, NB), _LIVE),
    CommandId.UNBIND_RESP:              ((NB, OK, OK, OK, OK, NB), _LIVE),
    CommandId.ENQUIRE_LINK_RESP:        ((NB, OK, OK, OK, OK, NB), _LIVE),
    CommandId.DELIVER_SM_RESP:          ((NB, NB, OK, OK, OK, NB), _LIVE),
    CommandId.DATA_SM_RESP:             ((NB, NB, OK, OK, OK, NB), _LIVE),
    # responses to requests only an ESME sends
    CommandId.BIND_RECEIVER_RESP:       ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.BIND_TRANSMITTER_RESP:    ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.BIND_TRANSCEIVER_RESP:    ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.SUBMIT_SM_RESP:           ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.SUBMIT_MULTI_RESP:        ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.QUERY_SM_RESP:            ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.CANCEL_SM_RESP:           ((ID, ID, ID, ID, ID, ID), _LIVE),
    CommandId.REPLACE_SM_RESP:          ((ID, ID, ID, ID, ID, ID), _LIVE),
}  # fmt: skip

# The table flattened for one dict lookup per PDU.
_CHECK: dict[tuple[State, int], Status] = {
    (state, cid): cell
    for cid, (cells, _) in _TABLE.items()
    for state, cell in zip(_COLUMNS, cells, strict=True)
}
_SEND: frozenset[tuple[State, int]] = frozenset(
    (state, cid) for cid, (_, states) in _TABLE.items() for state in states
)

BIND_STATE: dict[int, State] = {
    CommandId.BIND_TRANSMITTER: State.BOUND_TX,
    CommandId.BIND_RECEIVER: State.BOUND_RX,
    CommandId.BIND_TRANSCEIVER: State.BOUND_TRX,
}


_RINVCMDID = Status.ESME_RINVCMDID


def check(state: State, command_id: int) -> int:
    """ESME_ROK if a PDU with this command_id may arrive from the ESME now, else the status to refuse
    it with. Unknown command ids give ESME_RINVCMDID."""
    return _CHECK.get((state, command_id), _RINVCMDID)


def can_send(state: State, command_id: int) -> bool:
    """Whether the server may send a PDU with this command_id in this state."""
    return (state, command_id) in _SEND


def next_state(state: State, command_id: int, status: int = Status.ESME_ROK) -> State:
    """The state after the server answered (or sent) `command_id` with `status`.

    A bind answered ESME_ROK in OPEN binds; an unbind either way, or its resp, leaves the
    session UNBOUND; nothing else moves it. Closing the connection is the caller's business
    (it goes to CLOSED itself).
    """
    if state is State.CLOSED:
        return state
    if status == Status.ESME_ROK and state is State.OPEN and command_id in BIND_STATE:
        return BIND_STATE[command_id]
    if command_id in (CommandId.UNBIND, CommandId.UNBIND_RESP) and state in _BOUND:
        return State.UNBOUND
    return state


def receives_deliveries(state: State) -> bool:
    """deliver_sm (MO messages and receipts) may be sent in this state."""
    return state in _RECEIVERS


def transmits(state: State) -> bool:
    """The ESME may submit messages in this state."""
    return state is State.BOUND_TX or state is State.BOUND_TRX


def is_bound(state: State) -> bool:
    return state in _BOUND


def is_response(command_id: int) -> bool:
    return bool(command_id & RESP)
