"""Feature modules that plug into the core at start.

Importing this module imports every feature, so that their tables join the
ledger's metadata, their appliers register for the message types they own,
and their periodic jobs are known to the worker. Add a feature here with
one import line.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.context import Gateway

# name -> job(gateway) -> amount of work done (0 when idle); run by the worker.
PERIODIC: dict[str, Callable[[Gateway], int]] = {}


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
    import gateway.policy.feature  # noqa: F401, PLC0415
