"""Feature modules that plug into the core at start.

Importing this module imports every feature, so that their tables join the
ledger's metadata, their appliers register for the message types they own,
and their periodic jobs are known to the worker. Add a feature here with
one import line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.context import Gateway
from gateway.transport.base import Delivery, Disposition

# name -> job(gateway) -> amount of work done (0 when idle); run by the worker.
PERIODIC: dict[str, Callable[[Gateway], int]] = {}


@dataclass(frozen=True)
class QueueConsumer:
    """Queues a feature consumes for as long as the worker runs, and its handler."""

    queues: Callable[[Gateway], Sequence[str]]
    handle: Callable[[Gateway, Sequence[Delivery]], Sequence[Disposition]]


# name -> consumer; the worker runs each in a thread of its own until it stops.
CONSUMERS: dict[str, QueueConsumer] = {}


def consumer(
    name: str, queues: Callable[[Gateway], Sequence[str]]
) -> Callable[
    [Callable[[Gateway, Sequence[Delivery]], Sequence[Disposition]]],
    Callable[[Gateway, Sequence[Delivery]], Sequence[Disposition]],
]:
    """Register a batch handler for queues the worker consumes continuously."""

    def wrap(
        fn: Callable[[Gateway, Sequence[Delivery]], Sequence[Disposition]],
    ) -> Callable[[Gateway, Sequence[Delivery]], Sequence[Disposition]]:
        CONSUMERS[name] = QueueConsumer(queues, fn)
        return fn

    return wrap


def periodic(name: str) -> Callable[[Callable[[Gateway], int]], Callable[[Gateway], int]]:
    """Register a job the worker runs in a loop of its own."""

    def wrap(fn: Callable[[Gateway], int]) -> Callable[[Gateway], int]:
        PERIODIC[name] = fn
        return fn

    return wrap


def load() -> None:
    """Import every feature module (idempotent)."""
    # One line per feature; importing registers its tables, appliers and jobs.
    import gateway.connectors.feature  # noqa: PLC0415
    import gateway.disputes.feature  # noqa: PLC0415
    import gateway.lifecycle.feature  # noqa: PLC0415
    import gateway.policy.feature  # noqa: PLC0415
    import gateway.retention.feature  # noqa: F401, PLC0415
