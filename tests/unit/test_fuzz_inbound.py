"""Fuzzing the inbound verifier and the whole inbound path: no crash, no hang.

Whatever bytes arrive, ``Verifier.verify`` raises only cafgw errors, and
``handle_batch`` records the message (quarantined) and acknowledges it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.context import Gateway
from gateway.errors import CafgwError
from gateway.ledger.status import Direction, Status
from gateway.services.receiving import handle_batch
from gateway.transport.base import Delivery, Verdict
from gateway.transport.topology import Topology
from tests.unit.corpus_gateway import opened_corpus_gateway
from tests.unit.fuzz_support import FUZZ_SECONDS, fuzz_settings, mutated, run_for

CORPUS = Path(__file__).resolve().parents[1] / "data" / "attacks"
GOOD = (CORPUS / "00-good.xml").read_bytes()
SEEDS = [GOOD, *(p.read_bytes() for p in sorted(CORPUS.glob("*.xml"))[1:12])]

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(int(FUZZ_SECONDS * 4) + 60)]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with opened_corpus_gateway(tmp_path) as gw:
        yield gw


def _bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=2048),
        st.sampled_from(SEEDS).flatmap(mutated),
    )


def test_the_verifier_raises_only_cafgw_errors_on_any_input(gateway: Gateway) -> None:
    accepted: list[bytes] = []

    @given(data=_bodies())
    @fuzz_settings
    def target(data: bytes) -> None:
        try:
            verified = gateway.verifier.verify(data)
        except CafgwError:
            return
        # Anything that verifies is what was signed: same sender and id as the genuine one.
        assert verified.sender == "332"
        accepted.append(data)

    run_for(target)


def test_the_inbound_path_records_and_acknowledges_any_input(gateway: Gateway) -> None:
    tags = iter(range(1, 10**9))

    @given(data=_bodies())
    @fuzz_settings
    def target(data: bytes) -> None:
        delivery = Delivery(
            queue=Topology().inbox("336"),
            routing_key="336.Assessment.332",
            body=data,
            message_id=None,
            headers={},
            delivery_count=0,
            tag=next(tags),
            user_id="guest",  # the broker account that published it
        )
        (disposition,) = handle_batch(gateway, [delivery])
        assert disposition.verdict == Verdict.ACK

    run_for(target)
    rows = gateway.ledger.find(authority="336", direction=Direction.INBOUND, limit=10_000)
    assert rows  # something was recorded
    assert all(r.status in (Status.QUARANTINED, Status.VERIFIED) for r in rows)


def test_a_quarantined_message_delivered_again_is_acknowledged_not_retried(
    gateway: Gateway,
) -> None:
    # Found by fuzzing: the repeat used to hit the ledger's unique key and
    # fail its batch, which the broker then retried until it was parked.
    tampered = (CORPUS / "07-tampered-body.xml").read_bytes()
    for tag in (1, 2):
        delivery = Delivery(
            queue=Topology().inbox("336"),
            routing_key="336.Assessment.332",
            body=tampered,
            message_id=None,
            headers={},
            delivery_count=0,
            tag=tag,
            user_id="guest",  # the broker account that published it
        )
        (disposition,) = handle_batch(gateway, [delivery])
        assert disposition.verdict == Verdict.ACK
    rows = gateway.ledger.find(authority="336", direction=Direction.INBOUND)
    (row,) = [r for r in rows if r.status == Status.QUARANTINED]
    assert [h.status for h in row.history] == [
        Status.RECEIVED,
        Status.QUARANTINED,
        Status.DUPLICATE,
    ]
