"""An existence query erased at its asker, on gateways of their own (own ledgers, keys).

Dudley (332) asks Wolverhampton (336) about a child, and 336 answers. Dudley's DPO then
erases the child: the query and the answer go from Dudley's ledger, with the case-log
line that let an answer be taken only once. Wolverhampton, wrong or hostile, answers
again: Dudley's gateway refuses it, whatever 336's gateway did, and Dudley's records do
not change (before, with the line gone, a second answer was taken and tied the erased
child to 336's contact again).
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from pathlib import Path

import pytest
from broker_admin import create_vhost, delete_vhost

from gateway.ledger.status import Status
from gateway.model import (
    Child,
    ErasureGround,
    Identifier,
    Safeguarding,
)
from gateway.retention import erasure
from gateway.services import coordination, views
from tests.integration.sovereignty_region import Region, region

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHILD = Child(
    "Kacper", "Nowak", date(2012, 7, 9), identifiers=(Identifier("UPN", "J336203317005"),)
)


def _answered(r: Region, query: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = views.existence_answer(r.gw("332"), "332", query).answer
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"332 never had an answer to {query}")


def test_an_answer_to_a_query_its_asker_erased_is_quarantined_and_changes_nothing(
    tmp_path: Path,
) -> None:
    name = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    try:
        with region(tmp_path, f"amqp://guest:guest@127.0.0.1:5672/{name}") as r:
            asked = coordination.ask_existence(
                r.gw("332"),
                "332",
                "336",
                CHILD,
                Safeguarding("Dudley MASH manager", "sibling at risk"),
            )
            assert _answered(r, asked.message_id).startswith("match=")
            erasure.erase_child(
                r.gw("332"),
                "332",
                "J336203317005",
                ground=ErasureGround.OBJECTION,
                reference="DPO/2026/160",
                actor="DPO",
            )
            shown = views.existence_answer(r.gw("332"), "332", asked.message_id)
            assert shown.answer is None and shown.erased_at is not None
            before = r.state("332")
            again = r.existence_answer("336", "332", asked.message_id)
            record = r.received("332", r.publish(again))
            assert record.status == Status.QUARANTINED, record.reason
            assert f"query {asked.message_id} was erased at 332" in (record.reason or "")
            assert r.state("332") == before
            assert views.existence_answer(r.gw("332"), "332", asked.message_id).answer is None
    finally:
        delete_vhost(name)
