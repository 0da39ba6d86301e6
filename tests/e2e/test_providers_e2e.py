"""Each provider end to end: smpplib submits → the adapter's real HTTP request reaches the fake
provider → the status moves there (poll or webhook) → the ESME gets the right receipt."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from smppgw.fakes import fake_class
from tests.e2e.harness import connect, http_port, receipt_fields, smpp_port, start_app

SECRET = "hook-s3cret"

PROVIDERS = {
    "smsfly": ({"api_key": "fly-key"}, {"api_key": "fly-key"}),
    "smsclub": ({"token": "club-token"}, {"token": "club-token", "rate_limit": None}),
    "smsend": ({"username": "u1", "password": "p1"}, {"username": "u1", "password": "p1"}),
    "floppysend": ({"api_key": "floppy-key"}, {"api_key": "floppy-key"}),
    "smspartner": ({"api_key": "partner-key"}, {"api_key": "partner-key"}),
}


@pytest.mark.parametrize("ptype", list(PROVIDERS))
@pytest_twisted.ensureDeferred
async def test_submit_reaches_the_provider_and_its_status_comes_back_as_a_receipt(tmp_path, ptype):
    creds, fake_args = PROVIDERS[ptype]
    fake = fake_class(ptype)(delay=0.2, **fake_args).start()
    sender = {"smsclub": "VashZakaz", "smsfly": "InfoCenter"}.get(ptype, "TEST")  # senders the fakes know
    url = fake.url + {"smsfly": "/api/v2/api.php"}.get(ptype, "")  # SMS-fly's url is its one endpoint
    provider = {"type": ptype, "url": url, "poll_first": 0.2, "webhook_secret": SECRET, **creds}
    app = start_app(tmp_path, providers={"p": provider}, routes=[{"providers": ["p"]}])
    fake.webhook_url = f"http://127.0.0.1:{http_port(app)}/webhooks/p/{SECRET}"
    port = smpp_port(app)

    def scenario():
        esme = connect(port)
        esme.client.send_message(
            source_addr_ton=5,
            source_addr=sender,
            dest_addr_ton=1,
            destination_addr="380671230000",
            short_message=b"to be delivered",
            registered_delivery=1,
        )
        esme.client.send_message(
            source_addr_ton=5,
            source_addr=sender,
            dest_addr_ton=1,
            destination_addr="380671230002",
            short_message=b"to fail",
            registered_delivery=1,
        )
        ok = esme.pump(lambda: len(esme.receipts) == 2, timeout=20)
        esme.close()
        return ok, esme

    try:
        ok, esme = await deferToThread(scenario)
        assert ok, f"receipts: {[r.short_message for r in esme.receipts]}"
        assert [r.status for r in esme.resps] == [0, 0]
        ids = {p.message_id.decode() for p in esme.resps}
        stats = {r.source_addr.decode(): receipt_fields(r)["stat"] for r in esme.receipts}
        assert stats == {"380671230000": "DELIVRD", "380671230002": "UNDELIV"}
        assert {r.receipted_message_id.decode() for r in esme.receipts} == ids
        metrics = app.metrics.exposition().decode()
        assert 'smppgw_provider_balance{currency="' in metrics  # polled at start
        assert 'smppgw_provider_requests_total{call="send",outcome="ok",provider="p"}' in metrics
        sent = {m.destination.lstrip("+"): m for m in fake.messages.values()}
        assert set(sent) == {"380671230000", "380671230002"}
        assert sent["380671230000"].text == "to be delivered"
    finally:
        await app.stop(grace=1.0)
        fake.stop()
