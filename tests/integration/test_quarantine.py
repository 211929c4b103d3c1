"""Tampered or wrongly signed messages on the real broker are quarantined, never delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.envelope.codec import envelope_to_element
from gateway.envelope.signing import Signer
from gateway.ledger.status import Direction, Status
from gateway.transport.base import OutgoingMessage, PublishOutcome, routing_key
from tests.integration.gateways import make_settings, notification_envelope, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _signer(keys_dir: Path, code: str) -> Signer:
    return Signer.from_files(keys_dir / code / "key.pem", keys_dir / code / "cert.pem")


def _quarantined(gw: object, message_id: str) -> list:  # type: ignore[type-arg]
    return [
        r
        for r in gw.ledger.find(message_id=message_id, direction=Direction.INBOUND)  # type: ignore[attr-defined]
        if r.status == Status.QUARANTINED
    ]


@pytest.mark.parametrize("attack", ["tampered-body", "wrong-signer", "forged-routing-key"])
def test_a_bad_message_on_the_broker_is_quarantined_with_its_reason(
    tmp_path: Path, vhost: str, attack: str
) -> None:
    settings = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    env = notification_envelope("332", "336")
    key = routing_key("336", "Notification", "332")
    if attack == "wrong-signer":
        # Signed with Sandwell's key while the header claims Dudley.
        data = _signer(settings.keys_dir, "333").sign(envelope_to_element(env))
        expected = "signature"
    elif attack == "tampered-body":
        data = _signer(settings.keys_dir, "332").sign(envelope_to_element(env))
        data = data.replace(
            b"A cross-border case was identified.", b"A cross-border case was IGNORED."
        )
        expected = "signature"
    else:
        # Correctly signed by Dudley, but published as if Sandwell sent it.
        data = _signer(settings.keys_dir, "332").sign(envelope_to_element(env))
        key = routing_key("336", "Notification", "333")
        expected = "forged routing"
    with running(settings) as gw:
        (result,) = gw.transport.publish(
            [OutgoingMessage(routing_key=key, body=data, message_id=env.header.message_id)]
        )
        assert result.outcome == PublishOutcome.CONFIRMED
        wait_for(lambda: bool(_quarantined(gw, env.header.message_id)), what="quarantine")
        (record,) = _quarantined(gw, env.header.message_id)
        assert expected in (record.reason or "")
        assert all(
            i.message_id != env.header.message_id
            for i in gw.ledger.inbox("336", include_restricted=True)
        )
