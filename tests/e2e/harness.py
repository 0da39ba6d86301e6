"""A gateway on free loopback ports inside the test's reactor, and blocking smpplib ESMEs that
run in threads (smpplib is blocking; the reactor must keep running while they wait)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from smppgw.app import App
from smppgw.config import parse

RECEIPT_RE = re.compile(
    rb"^id:(\S+) sub:(\d{3}) dlvrd:(\d{3}) submit date:(\d{10}) done date:(\d{10})"
    rb" stat:(\w+) err:(\w{3}) text:"
)


def gateway_config(tmp_path, **overrides: Any) -> dict:
    sim = {
        "type": "simulator",
        "delay": 0.0,
        "enroute": True,
        "seed": 1,
        "outcomes": {"DELIVRD": 1},
        "suffixes": {"0002": "UNDELIV", "0006": "EXPIRED", "0007": "REJECTD"},
    }
    sim.update(overrides.pop("simulator", {}))
    data = {
        "server": {"host": "127.0.0.1", "port": 0, **overrides.pop("server", {})},
        "http": {"host": "127.0.0.1", "port": 0},
        "store": {"path": str(tmp_path / "gw.db")},
        "log": {"level": "warning"},
        "accounts": {"demo": {"password": "demo"}, "other": {"password": "other1", "max_binds": 2}},
        "providers": {"sim": sim},
    }
    for key, value in overrides.items():
        data[key] = value
    data.setdefault("routes", [{"providers": [next(iter(data["providers"]))]}])
    return data


def start_app(tmp_path, **overrides: Any) -> App:
    from twisted.internet import reactor

    app = App(parse(gateway_config(tmp_path, **overrides), "test.toml"), reactor)
    app.start()
    return app


def smpp_port(app: App) -> int:
    return app.smpp_port.getHost().port  # type: ignore[union-attr]


def http_port(app: App) -> int:
    return app.http_port.getHost().port  # type: ignore[union-attr]


@dataclass
class Esme:
    """One smpplib client plus what it received."""

    client: smpplib.client.Client
    receipts: list = field(default_factory=list)
    other: list = field(default_factory=list)
    resps: list = field(default_factory=list)
    answer_status: int = 0  # what our deliver_sm handler answers

    def on_deliver(self, pdu: Any) -> int:
        if pdu.esm_class & 0x04:
            self.receipts.append(pdu)
        else:
            self.other.append(pdu)
        return self.answer_status

    def on_sent(self, pdu: Any) -> None:
        self.resps.append(pdu)

    def submit(self, dest: str = "380501234567", text: bytes = b"hello", rd: int = 1, **kw: Any) -> Any:
        return self.client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="TEST",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr=dest,
            short_message=text,
            data_coding=kw.pop("data_coding", 0),
            registered_delivery=rd,
            **kw,
        )

    def pump(self, until, timeout: float = 10.0) -> bool:
        """Read PDUs until `until()` holds or the deadline passes."""
        end = time.monotonic() + timeout
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.client._socket.settimeout(min(left, 0.5))
            try:
                self.client.read_once(auto_send_enquire_link=False)
            except TimeoutError:
                continue
        return True

    def sync(self) -> None:
        """One enquire_link round trip: everything sent before it has been processed by the gateway."""
        self.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=self.client))
        while self.client.read_pdu().command != "enquire_link_resp":
            pass

    def close(self) -> None:
        try:
            self.client.unbind()
        except Exception:
            pass
        self.client.disconnect()


def connect(port: int, kind: str = "transceiver", system_id: str = "demo", password: str = "demo") -> Esme:
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    esme = Esme(client)
    client.set_message_received_handler(esme.on_deliver)
    client.set_message_sent_handler(esme.on_sent)
    client.set_error_pdu_handler(lambda pdu: None)  # error resps then reach on_sent, for asserting
    client.connect()
    getattr(client, f"bind_{kind}")(system_id=system_id, password=password)
    return esme


def bind_status(port: int, **kw: Any) -> int:
    """0 when the bind succeeds, else the command_status of the bind resp."""
    try:
        connect(port, **kw).close()
        return 0
    except smpplib.exceptions.PDUError as e:
        return e.args[1]


def receipt_fields(pdu: Any) -> dict:
    m = RECEIPT_RE.match(pdu.short_message)
    assert m, pdu.short_message
    return {
        "id": m.group(1).decode(),
        "stat": m.group(6).decode(),
        "err": m.group(7).decode(),
        "dlvrd": m.group(3).decode(),
    }
