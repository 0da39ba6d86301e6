"""Secrets (ESME passwords, provider keys) appear in no log line, metric or error."""

from __future__ import annotations

import logging

import pytest_twisted
import smpplib.exceptions
from twisted.internet.threads import deferToThread

from smppgw.fakes.smsclub import FakeSmsClub
from tests.e2e.harness import connect, smpp_port, start_app


def all_log_text(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)


@pytest_twisted.ensureDeferred
async def test_passwords_and_provider_tokens_stay_out_of_logs_and_metrics(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeSmsClub(token="the-right-token", rate_limit=None).start()
    app = start_app(
        tmp_path,
        accounts={"demo": {"password": "demo"}},
        providers={"club": {"type": "smsclub", "url": fake.url, "token": "wrong-tok3n-xyz"}},
        dispatch={"max_attempts": 1},
    )
    port = smpp_port(app)

    def scenario():
        try:
            connect(port, password="leak123")
        except smpplib.exceptions.PDUError as e:
            refused = e.args[1]
        esme = connect(port)
        esme.client.send_message(
            source_addr_ton=5,
            source_addr="VashZakaz",
            dest_addr_ton=1,
            destination_addr="380671230000",
            short_message=b"x",
            registered_delivery=1,
        )
        esme.pump(lambda: esme.receipts, timeout=10)
        esme.close()
        return refused, esme

    try:
        refused, esme = await deferToThread(scenario)
        assert refused == 0x0E
        assert esme.receipts  # the provider refused our key: the message failed, with a receipt
        text = all_log_text(caplog)
        assert "provider_send_failed" in text  # the failure is logged…
        assert "credentials refused" in text
        metrics = app.metrics.exposition().decode()
        for secret in ("leak123", "wrong-tok3n-xyz"):
            assert secret not in text  # …without the secrets
            assert secret not in metrics
        assert 'outcome="misconfigured",provider="club"' in metrics
    finally:
        await app.stop(grace=1.0)
        fake.stop()
