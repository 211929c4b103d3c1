"""The one exception tree of cafgw.

Every error says what was wrong, where (file, row, field, message id) and,
where it helps, what to do. Third-party exceptions (pika, lxml, sqlalchemy,
python-xmlsec) are converted into these once, at the boundary that called them,
with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CafgwError(Exception):
    """Base of every error cafgw raises on purpose."""


class ConfigError(CafgwError):
    """A configuration file or setting is missing or invalid (names the key)."""


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of one record of an input file."""

    source: str
    record: str
    field: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" ({self.value})"
        return f"{self.source}:{self.record}:{self.field}: {self.reason}{shown}"


class RecordError(CafgwError):
    """A record of a local export has one or more problems; nothing of it is sent."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MalformedInputError(CafgwError):
    """A whole input file cannot be read (bad encoding, truncated, missing column)."""


class InputLimitError(MalformedInputError):
    """An input is over a configured limit (HTTP 413): names the limit, its value, what came."""

    def __init__(self, message: str, limit: str, maximum: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum


class MappingError(ConfigError):
    """An adapter mapping file is invalid; the message names the key."""


class SchemaError(CafgwError):
    """A canonical document does not validate against the XSD."""

    def __init__(self, problems: Sequence[str], message_id: str | None = None) -> None:
        self.problems = tuple(problems)
        self.message_id = message_id
        where = f"message {message_id}: " if message_id else ""
        super().__init__(where + "; ".join(self.problems))


class UnsafeXmlError(CafgwError):
    """XML refused before or while parsing: DTD, entities, size or depth limit."""


class SignatureError(CafgwError):
    """A signature is missing, malformed, untrusted or does not verify."""


class TrustError(SignatureError):
    """The signing certificate is not the pinned one of the header's sender."""


class ReplayError(CafgwError):
    """A message id was seen with another digest, or created-at is outside the window."""


class PolicyRefusal(CafgwError):
    """A policy rule refuses the message; ``rule`` names the rule."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"{rule}: {reason}")


class NotReceivedYet(PolicyRefusal):
    """A message names an earlier one this authority has not received from anyone:
    it may still be on its way (in a delay queue after a failure, or behind on the
    broker). The receiving pipeline retries the later message while its retries
    last and refuses it (as the ``PolicyRefusal`` it is) on the last one."""


class TransportError(CafgwError):
    """The broker could not be reached or did not confirm; transient, retried."""


class BrokerUnavailableError(TransportError):
    """Nothing answers at the broker address."""


class QueueMigrationError(TransportError):
    """A queue could not be moved into the shape the gateway declares (``cafgw broker
    migrate-queues``): names the queue and vhost, and what to do. Not transient: the
    command stops, and running it again resumes the move."""


class LedgerError(CafgwError):
    """The ledger database failed or holds inconsistent state."""


class OutageError(CafgwError):
    """Something all work needs does not answer for now (the ledger's database is
    restarting): nothing is wrong with the work in hand, so it is held and tried again
    as it is, never counted against a message's retry budget."""


class LedgerUnavailableError(LedgerError, OutageError):
    """The ledger's database does not answer (not running, restarting, connection lost)."""


class NotFoundError(CafgwError):
    """A resource does not exist, or the caller may not know that it exists."""


class AccessDeniedError(CafgwError):
    """The caller is not authenticated or lacks the role for this action."""


class ForbiddenError(AccessDeniedError):
    """The caller is authenticated but lacks the role (HTTP 403)."""


class RateLimitedError(AccessDeniedError):
    """The caller's API key is over its request rate (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AdapterNotYoursError(ForbiddenError):
    """An authority tried to submit through an adapter that belongs to another (HTTP 403)."""


class ConflictError(CafgwError):
    """The request conflicts with an earlier one (e.g. an Idempotency-Key reused) (HTTP 409)."""


class UnknownAdapterError(CafgwError):
    """No adapter is registered under the given name."""
