"""What ``cafgw broker migrate-queues`` says about a queue, without a broker."""

from __future__ import annotations

import pytest

from gateway.transport.probe import PassiveCount
from gateway.transport.queue_survey import (
    QueueSurvey,
    describe_inequivalence,
    holding_name,
)
from gateway.transport.topology import QueueSpec

SPEC = QueueSpec("caf.parking.336", {"x-queue-type": "quorum"})


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'caf.parking.336' "
            "in vhost 'v': received the value 'quorum' of type 'longstr' but current is none",
            "x-queue-type: wanted 'quorum', found none",
        ),
        (
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'caf.retry.336.1' "
            "in vhost 'v': received the value '5000' of type 'signedint' but current is the "
            "value '1000' of type 'long'",
            "x-message-ttl: wanted '5000', found '1000'",
        ),
        (
            "PRECONDITION_FAILED - parameters for queue 'q' in vhost 'v' not equivalent",
            "parameters for queue 'q' in vhost 'v' not equivalent",
        ),
    ],
)
def test_a_refused_declare_is_told_as_the_argument_wanted_and_found(reply: str, said: str) -> None:
    assert describe_inequivalence(reply) == said


def test_a_queue_in_the_old_shape_is_moved_through_its_holding_queue() -> None:
    found = QueueSurvey(SPEC, PassiveCount(2, 0), "x-queue-type: wanted 'quorum', found none", None)
    assert found.needs_move
    assert holding_name(SPEC.name) in found.action


def test_a_holding_queue_left_by_a_stopped_run_is_finished_even_when_the_queue_is_right() -> None:
    found = QueueSurvey(SPEC, PassiveCount(0, 0), None, PassiveCount(3, 0))
    assert found.needs_move
    assert found.action.startswith("resume")


def test_a_queue_in_the_wanted_shape_without_a_holding_queue_is_left_alone() -> None:
    assert not QueueSurvey(SPEC, PassiveCount(5, 1), None, None).needs_move
    assert not QueueSurvey(SPEC, None, None, None).needs_move


def test_consumers_of_the_queue_and_of_its_holding_queue_both_count() -> None:
    assert QueueSurvey(SPEC, PassiveCount(0, 1), "x", PassiveCount(0, 2)).consumers == 3
