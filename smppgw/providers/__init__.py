"""Provider adapters: one module per HTTP provider, plus the built-in simulator.

`ADAPTERS` maps a config `type` to "module:Class"; modules are imported only when a
config names them.
"""

from __future__ import annotations

import importlib
from typing import Any

ADAPTERS = {
    "simulator": "smppgw.providers.simulator:Simulator",
    "smsfly": "smppgw.providers.smsfly:SmsFly",
    "smsclub": "smppgw.providers.smsclub:SmsClub",
    "smsend": "smppgw.providers.smsend:SmSend",
    "floppysend": "smppgw.providers.floppysend:FloppySend",
    "smspartner": "smppgw.providers.smspartner:SmsPartner",
}


def adapter_class(type_name: str) -> Any:
    module, _, cls = ADAPTERS[type_name].partition(":")
    return getattr(importlib.import_module(module), cls)
