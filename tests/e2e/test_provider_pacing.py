"""A provider's documented limit covers every request: against the strict SMS Club fake (9
requests in any sliding second, every call counted), a gateway that starts with its balance and
originator calls, then sends a burst and polls the statuses, draws no 429 and never has more
than 9 requests arriving within one second."""

from __future__ import annotations

import pytest_twisted
from twisted.internet.threads import deferToThread

from smppgw.fakes.smsclub import FakeSmsClub
from tests.e2e.harness import connect, receipt_fields, smpp_port, start_app

COUNT = 24  # distinct texts: one send request each, on top of the polls, balance and senders


@pytest_twisted.ensureDeferred
async def test_every_request_to_sms_club_keeps_its_nine_per_second(tmp_path):
    fake = FakeSmsClub(token="t", delay=0.2).start()  # rate_limit 9: the documented limit
    app = start_app(
        tmp_path,
        providers={
            "club": {
                "type": "smsclub",
                "url": fake.url,
                "token": "t",
                "poll_first": 0.3,
                "balance_interval": 1,
                "senders_interval": 1,
            }
        },
    )
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        for i in range(COUNT):
            esme.client.send_message(
                source_addr_ton=5,
                source_addr="VashZakaz",
                dest_addr_ton=1,
                destination_addr=f"380671{i:04d}99",  # no suffix the fake gives a fate to
                short_message=f"text {i}".encode(),
                registered_delivery=1,
            )
        assert esme.pump(lambda: len(esme.resps) == COUNT)
        esme.pump(lambda: len(esme.receipts) >= COUNT, timeout=30)
        esme.close()
        return esme

    try:
        esme = await deferToThread(scenario)
        paths = {r.path for r in fake.requests}
    finally:
        await app.stop(grace=1.0)
        fake.stop()

    assert sorted(receipt_fields(r)["stat"] for r in esme.receipts) == ["DELIVRD"] * COUNT
    # every kind of call went out and was counted: sends, status polls, balance, originators
    assert {"/sms/send", "/sms/status", "/sms/balance", "/sms/originator"} <= paths
    assert fake.throttled == 0
    assert 1 <= fake.most_in_any_second() <= 9
