"""The one backoff: how long to wait before attempt n, and when to give up.

Every retry in cafgw waits by a ``Backoff``: a message going round the
broker's delay queues (``transport.retry.RetryPolicy``), a connection being
re-opened (``transport.reconnect.ReconnectPolicy``), a handover to a local
system that is down (``connectors.handover``), a send with no receipt yet
(``services.delivery``), an escalation nobody acknowledged
(``disputes.handover``). The steps are the waits before attempts 1, 2, ...;
the last one repeats. A random share (``jitter``) is taken off each wait so
that many waiters do not come back at once. ``budget`` is how many attempts
there are before giving up (None: no limit here; the caller decides).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_rng = random.Random()  # noqa: S311 - jitter, not secrets


@dataclass(frozen=True)
class Backoff:
    steps_s: tuple[float, ...]
    jitter: float = 0.0
    budget: int | None = None

    def __post_init__(self) -> None:
        if not self.steps_s or any(s < 0 for s in self.steps_s):
            raise ValueError("a backoff needs at least one step, none negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        if self.budget is not None and self.budget < 0:
            raise ValueError("a backoff budget is >= 0")

    @classmethod
    def exponential(
        cls, initial_s: float, max_s: float, attempts: int, jitter: float = 0.0
    ) -> Backoff:
        """Waits doubling from ``initial_s`` up to ``max_s``, ``attempts`` attempts in all."""
        steps: list[float] = []
        wait = initial_s
        for _ in range(max(1, attempts - 1)):
            steps.append(min(wait, max_s))
            wait *= 2
        return cls(tuple(steps), jitter, attempts)

    @classmethod
    def constant(cls, wait_s: float, budget: int | None = None) -> Backoff:
        """The same wait before every attempt."""
        return cls((wait_s,), 0.0, budget)

    def wait_s(self, attempt: int) -> float:
        """The wait before ``attempt`` (1-based; past the steps, the last step repeats)."""
        return float(self.steps_s[min(max(attempt, 1), len(self.steps_s)) - 1])

    def jittered_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """``wait_s`` less a random share of up to ``jitter`` of it."""
        return self.wait_s(attempt) * (1 - (rng or _rng).random() * self.jitter)

    def exhausted(self, attempts_made: int) -> bool:
        """Whether ``attempts_made`` attempts have spent the budget."""
        return self.budget is not None and attempts_made >= self.budget
