"""Message-level retry: the budget, the backoff steps and the headers a copy carries.

A RETRY verdict does not sleep anywhere: the message is copied to a delay
queue whose TTL is the backoff step, and the broker dead-letters it back to
the inbox when the TTL expires. After ``budget`` retries the message is
parked instead. A consumer that dies before it settles (killed, OOM) is
counted by the quorum queue itself, up to ``delivery_limit``.

Both transports (RabbitMQ and in-memory) take their decisions here, so the
two cannot disagree about when a message is parked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.backoff import Backoff
from gateway.settings import DeliverySettings
from gateway.transport.base import Disposition, Verdict

ATTEMPT_HEADER = "x-cafgw-attempt"  # retries already taken; 0 or absent on the original
REASON_HEADER = "x-cafgw-reason"  # why the last RETRY or PARK happened
ROUTING_KEY_HEADER = "x-cafgw-routing-key"  # the routing key the sender used
PUBLISHER_HEADER = "x-cafgw-publisher"  # the broker account that published the original
PARKED_FROM_HEADER = "x-cafgw-parked-from"  # the queue the message was parked from
# Headers of our own: believed only on messages a relay account published
# (``provenance``); dropped from anything else when it is delivered.
OWN_HEADER_PREFIX = "x-cafgw-"
# Why the broker dead-letters (x-first-death-reason); anything else is not the broker's word.
BROKER_DEATH_REASONS = frozenset({"delivery_limit", "expired", "rejected", "maxlen"})

# Headers the broker adds when it dead-letters or redelivers; a fresh copy drops
# them so that counts and histories start again.
BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a message is retried before it is parked."""

    budget: int = 5  # RETRY verdicts honoured before the message is parked
    backoff_s: tuple[float, ...] = (1, 5, 30, 120, 600)  # delay before retry n
    jitter: float = 0.2  # up to this fraction is taken off each delay at random
    delivery_limit: int = 10  # unsettled deliveries (crash, nack) before parking

    def __post_init__(self) -> None:
        if self.budget < 0 or self.delivery_limit < 1:
            raise ValueError("retry budget must be >= 0 and delivery limit >= 1")
        if self.budget and not self.backoff_s:
            raise ValueError("a retry budget needs at least one backoff step")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    @classmethod
    def from_delivery(cls, delivery: DeliverySettings, delivery_limit: int = 10) -> RetryPolicy:
        """The policy described by the ``delivery`` section of the settings."""
        return cls(
            budget=delivery.retry_budget,
            backoff_s=tuple(delivery.retry_backoff_s),
            delivery_limit=delivery_limit,
        )

    @property
    def backoff(self) -> Backoff:
        """The waits between retries (the one ``gateway.backoff.Backoff``)."""
        return Backoff(tuple(float(s) for s in self.backoff_s), self.jitter, self.budget)

    @property
    def steps(self) -> int:
        """How many delay queues the policy needs (retries past the last reuse it)."""
        return min(self.budget, len(self.backoff_s))

    def step_for(self, attempt: int) -> int:
        """The delay queue (1-based) that holds retry number ``attempt``."""
        return max(1, min(attempt, self.steps))

    def delay_s(self, step: int) -> float:
        return self.backoff.wait_s(step)

    def jittered_ms(self, step: int, rng: random.Random) -> int:
        """Per-message expiry: the step's delay minus a random share (spreads a herd)."""
        return max(1, int(self.backoff.jittered_s(step, rng) * 1000))

    def next_attempt(self, attempt: int) -> int | None:
        """The attempt number of the next retry, or None when the budget is spent."""
        return attempt + 1 if attempt < self.budget else None


def attempt_of(headers: Mapping[str, object]) -> int:
    """Retries already taken by a delivered message (0 for the original)."""
    value = headers.get(ATTEMPT_HEADER, 0)
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def parked_reason(headers: Mapping[str, object]) -> str:
    """Why a parked message was parked, whoever parked it."""
    value = headers.get(REASON_HEADER)
    if value is not None:
        return str(value)
    death = headers.get("x-first-death-reason")
    if death == "delivery_limit":
        return "delivery limit reached: the consumer never settled the message"
    if death in BROKER_DEATH_REASONS:
        return f"dead-lettered by the broker ({death})"
    return "unknown"


def copy_headers(
    headers: Mapping[str, object],
    routing_key: str,
    marks: Mapping[str, str | int],
    publisher: str | None = None,
    dropped: frozenset[str] = BROKER_HEADERS,
) -> dict[str, object]:
    """Headers for a retry, park, replay or migration copy: ``dropped`` (the broker's
    history) left out, marks set.

    ``routing_key`` and ``publisher`` are the delivery's origin as the broker
    vouched for it (``provenance``); the copy carries them, since its own
    routing key and ``user_id`` are the relay's.
    """
    out = {k: v for k, v in headers.items() if k not in dropped}
    out[ROUTING_KEY_HEADER] = routing_key
    out[PUBLISHER_HEADER] = publisher or ""
    for name, value in marks.items():
        out[name] = value[:MAX_REASON_CHARS] if isinstance(value, str) else value
    return out


@dataclass(frozen=True)
class Copy:
    """Where the copy of a RETRY or PARK verdict goes, and the headers it carries."""

    park: bool
    step: int  # the delay queue of a retry (1-based); 0 when parking
    headers: dict[str, object]


def copy_for(
    policy: RetryPolicy,
    disposition: Disposition,
    headers: Mapping[str, object],
    routing_key: str,
    queue: str,
    publisher: str | None = None,
) -> Copy:
    """Retry copy for the next attempt, or park copy once the budget is spent."""
    reason = disposition.reason or disposition.verdict.value
    attempt = attempt_of(headers)
    retry = disposition.verdict is Verdict.RETRY
    following = policy.next_attempt(attempt) if retry else None
    if following is not None:
        marks: dict[str, str | int] = {ATTEMPT_HEADER: following, REASON_HEADER: reason}
        step = policy.step_for(following)
        return Copy(
            park=False, step=step, headers=copy_headers(headers, routing_key, marks, publisher)
        )
    if retry:
        reason = f"retry budget of {policy.budget} spent: {reason}"
    marks = {ATTEMPT_HEADER: attempt, REASON_HEADER: reason, PARKED_FROM_HEADER: queue}
    return Copy(park=True, step=0, headers=copy_headers(headers, routing_key, marks, publisher))
