"""Fake HTTP providers, written from ../shared/providers/: real servers for tests and demos
(`smppgw fake-provider <type> --port N`)."""

from __future__ import annotations

import importlib
from typing import Any

FAKES = {
    "smsfly": "smppgw.fakes.smsfly:FakeSmsFly",
    "smsclub": "smppgw.fakes.smsclub:FakeSmsClub",
    "smsend": "smppgw.fakes.smsend:FakeSmSend",
    "floppysend": "smppgw.fakes.floppysend:FakeFloppySend",
    "smspartner": "smppgw.fakes.smspartner:FakeSmsPartner",
}


def fake_class(type_name: str) -> Any:
    module, _, cls = FAKES[type_name].partition(":")
    return getattr(importlib.import_module(module), cls)
