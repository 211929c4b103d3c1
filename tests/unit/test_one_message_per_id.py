"""A message id names one message of an authority's inbound, whoever sent it.

The local system acknowledges (``POST /v1/inbox/{id}/ack``), the drop folder
names (``<id>.xml``) and "not ours" records a received message by its id alone.
A second sender's message under an id another sender's message holds would be
taken for it: acknowledging one acknowledged both, and its drop file replaced
the first's. Found by a fresh-eyes review of the receiving path (2026-12-06).
The receiver now quarantines such a message and tells its sender (a REJECTED
receipt: its signature and route were proven), without naming whose the id is.
So it does a message under the id of one of the authority's own sends: a peer
echoing it back would have been found by the lookups that take an id alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from local_systems import with_connector
from sqlalchemy import select
from support.clock import Clock
from support.gateways import memory_gateway, settings_for
from support.outbound import queued

from gateway.connectors import handover
from gateway.context import Gateway
from gateway.errors import ConflictError
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import Envelope
from gateway.ops import attention
from gateway.retention import service as retention
from gateway.services.receiving import handle_batch
from gateway.services.receiving.pipeline import ID_TAKEN
from gateway.transport.base import Delivery, Verdict, routing_key
from gateway.transport.provenance import publishers_for
from tests.integration.gateways import notification_envelope

pytestmark = pytest.mark.timeout(60)


HOSTED = ("332", "335", "336")


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return memory_gateway(tmp_path, HOSTED)


def _from(gw: Gateway, sender: str, message_id: str | None = None, tag: int = 1) -> Delivery:
    env = notification_envelope(sender, "336")
    if message_id is not None:
        env = Envelope(replace(env.header, message_id=message_id), env.body)
    signed = gw.outbox.sign(env)
    assert signed.body is not None
    return Delivery(
        gw.topology.inbox("336"),
        routing_key("336", "Notification", sender),
        signed.body,
        signed.message_id,
        {},
        0,
        tag,
        sorted(publishers_for(gw.settings.broker, sender))[0],
    )


def _rows(gw: Gateway, message_id: str) -> dict[str, tuple[Status, str]]:
    found = gw.ledger.find(message_id=message_id, authority="336", direction=Direction.INBOUND)
    return {r.sender: (r.status, r.reason or "") for r in found}


def test_a_message_under_an_id_another_senders_message_holds_is_quarantined_naming_whose(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.ACK]
    second = _from(gw, "335", first.message_id, tag=2)
    assert [d.verdict for d in handle_batch(gw, [second])] == [Verdict.ACK]
    rows = _rows(gw, first.message_id)
    assert rows["332"][0] is Status.VERIFIED
    status, reason = rows["335"]
    assert status is Status.QUARANTINED
    # Whose message holds the id is not told: the reason goes back to the sender.
    assert reason == ID_TAKEN and "332" not in reason
    # Only the first is the local system's: acknowledging the id takes only it.
    inbox = gw.ledger.inbox("336", include_restricted=True)
    assert [(i.sender, i.message_id) for i in inbox] == [("332", first.message_id)]
    assert gw.ledger.acknowledge_local("336", first.message_id)
    assert _rows(gw, first.message_id)["335"][0] is Status.QUARANTINED


def test_the_second_of_two_senders_messages_under_one_id_in_a_batch_is_quarantined(
    gw: Gateway,
) -> None:
    first = _from(gw, "335")
    second = _from(gw, "332", first.message_id, tag=2)
    assert [d.verdict for d in handle_batch(gw, [first, second])] == [Verdict.ACK] * 2
    rows = _rows(gw, first.message_id)
    assert rows["335"][0] is Status.VERIFIED
    assert rows["332"][0] is Status.QUARANTINED
    assert rows["332"][1] == ID_TAKEN


def test_the_refused_sender_is_owed_a_rejected_receipt_and_its_resend_is_a_repeat(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    second = _from(gw, "335", first.message_id, tag=2)
    handle_batch(gw, [first])
    handle_batch(gw, [second])
    handle_batch(gw, [replace(second, tag=3)])  # sent again: the first decision stands
    (row,) = [
        r for r in gw.ledger.find(message_id=first.message_id, authority="336") if r.sender == "335"
    ]
    assert row.status is Status.QUARANTINED
    assert row.history[-1].status is Status.DUPLICATE
    with gw.ledger.engine.connect() as conn:
        due, receipt = conn.execute(
            select(messages.c.receipt_due, messages.c.receipt_message_id).where(
                messages.c.id == row.pk
            )
        ).one()
    assert due or receipt is not None


def test_the_same_sender_sending_its_message_again_is_still_a_repeat_not_a_clash(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    handle_batch(gw, [first])
    handle_batch(gw, [replace(first, tag=2)])
    assert _rows(gw, first.message_id)["332"][0] is Status.VERIFIED


def test_a_message_under_the_id_of_one_of_the_authoritys_own_sends_is_quarantined(
    gw: Gateway,
) -> None:
    # 336 sent 332 a message; 332 answers with a message of its own under that id.
    ours = replace(queued(sender="336", authority="336"), recipient="332", route_to="332")
    gw.ledger.record([ours])
    echo = _from(gw, "332", ours.message_id)
    assert [d.verdict for d in handle_batch(gw, [echo])] == [Verdict.ACK]
    status, reason = _rows(gw, ours.message_id)["332"]
    assert (status, reason) == (Status.QUARANTINED, ID_TAKEN)
    assert gw.ledger.inbox("336", include_restricted=True) == []


def _refused_under_the_id(gw: Gateway, first: Delivery, how: str) -> None:
    """A row under ``first``'s id that is not its holder: 335's own message under the id
    (``clash``), or 335 delivering 332's bytes on its own key (``forged``: sender ``?``)."""
    if how == "clash":
        handle_batch(gw, [_from(gw, "335", first.message_id, 2)])
    else:
        forged = replace(
            first,
            routing_key="336.Notification.335",
            tag=3,
            user_id=sorted(publishers_for(gw.settings.broker, "335"))[0],
        )
        handle_batch(gw, [forged])
    assert _rows(gw, first.message_id)[_REFUSED[how]][0] is Status.QUARANTINED


_REFUSED = {"clash": "335", "forged": "?"}


@pytest.mark.parametrize("how", sorted(_REFUSED))
def test_erasing_a_refused_row_under_an_id_leaves_the_holders_drop_file(
    tmp_path: Path, how: str
) -> None:
    clock = Clock.starting_now()
    drop = tmp_path / "drop-336"
    drop.mkdir()
    settings = with_connector(
        settings_for(tmp_path, HOSTED, now=clock()), "336", kind="file", directory=str(drop)
    )
    settings = settings.model_copy(
        update={"retention": settings.retention.model_copy(update={"quarantined_days": 30})}
    )
    gw = memory_gateway(tmp_path, HOSTED, clock=clock, settings=settings)
    first = _from(gw, "332")
    handle_batch(gw, [first])
    handover.deliver_pending(gw)
    dropped = drop / f"{first.message_id}.xml"
    assert dropped.exists()
    _refused_under_the_id(gw, first, how)
    clock.advance(days=31)  # the refused row is due; 332's, waiting for its system, is not
    assert retention.apply(gw, "336").messages == 1
    assert dropped.exists()  # 332's message, not yet taken by the local system


@pytest.mark.parametrize("how", sorted(_REFUSED))
def test_dismissing_a_refused_row_under_an_id_needs_its_sender_and_leaves_the_holders(
    gw: Gateway, how: str
) -> None:
    first = _from(gw, "332")
    handle_batch(gw, [first])
    _refused_under_the_id(gw, first, how)
    (held,) = [r for r in gw.ledger.find(message_id=first.message_id) if r.sender == "332"]
    gw.ledger.transition([held.pk], Status.DEAD_LETTERED, "the local system refused it")
    with pytest.raises(ConflictError, match="say whose to dismiss"):
        attention.dismiss(gw.ledger, "336", first.message_id, "A. Admin", "seen it")
    done = attention.dismiss(
        gw.ledger, "336", first.message_id, "A. Admin", "attack seen", _REFUSED[how]
    )
    assert [d.status for d in done] == [Status.QUARANTINED]
    # 332's dead letter still needs a human.
    assert _rows(gw, first.message_id)["332"][0] is Status.DEAD_LETTERED
    again = attention.dismiss(gw.ledger, "336", first.message_id, "A. Admin", "handled")
    assert [d.status for d in again] == [Status.DEAD_LETTERED]


def test_a_senders_dead_letter_and_its_refused_resend_under_one_id_are_dismissed_apart(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    handle_batch(gw, [first])
    resend = _from(gw, "332", first.message_id, tag=2)  # other bytes under the same id
    handle_batch(gw, [resend])
    (held,) = [
        r for r in gw.ledger.find(message_id=first.message_id) if r.status is not Status.QUARANTINED
    ]
    gw.ledger.transition([held.pk], Status.DEAD_LETTERED, "the local system refused it")
    done = attention.dismiss(
        gw.ledger, "336", first.message_id, "A. Admin", "junk", "332", Status.QUARANTINED
    )
    assert [d.status for d in done] == [Status.QUARANTINED]
    statuses = sorted(r.status.value for r in gw.ledger.find(message_id=first.message_id))
    assert statuses == ["DEAD_LETTERED", "QUARANTINED"]
    again = attention.dismiss(gw.ledger, "336", first.message_id, "A. Admin", "handled", "332")
    assert [d.status for d in again] == [Status.DEAD_LETTERED]
