"""One case identity: a case is (owning authority, case reference).

The owning authority is the one whose case system holds the reference (the
authority that submitted the record). Its thread id (the envelopes'
CorrelationId) is derived from that pair, so every message about one local
case carries the same id. The id is a name, never a credential: anyone can
compute it, so it grants nothing. Who may change what on a thread is
``gateway.policy.sovereignty``'s to say; this module only finds the thread a
message means, however it names it: by thread id, by a case reference given
as the CorrelationId, or by the body's case reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from gateway.cases import store
from gateway.cases.store import CaseThread, get

_CASE_NAMESPACE = uuid.UUID("6f1c9a52-3f0e-4bd5-9c2e-6a0d8f1e2c11")


def correlation_id(owner: str, case_ref: str) -> str:
    """The case thread id: the same for every message about one local case."""
    return str(uuid.uuid5(_CASE_NAMESPACE, f"{owner}:{case_ref}"))


def owner_named_by(thread_id: str, case_ref: str | None, codes: Iterable[str]) -> str | None:
    """The authority whose thread id for ``case_ref`` is ``thread_id``, if any."""
    if not case_ref:
        return None
    return next((code for code in codes if correlation_id(code, case_ref) == thread_id), None)


def threads_named(
    conn: Connection, holder: str, thread_id: str, case_ref: str | None
) -> list[CaseThread]:
    """Every thread ``holder`` keeps that a message naming (thread_id, case_ref) could mean."""
    refs = [r for r in (thread_id, case_ref) if r]
    return store.threads_named(conn, holder, thread_id, refs)


def is_party(thread: CaseThread, code: str) -> bool:
    """Whether ``code`` owns ``thread`` or its owner made it a party."""
    return code == thread.owner or code in thread.parties


@dataclass(frozen=True)
class Placement:
    """Where a received message belongs: whose case, under which thread id, and the
    receiver's copy of that thread if it has one."""

    owner: str
    thread_id: str
    case_ref: str | None
    thread: CaseThread | None


@dataclass(frozen=True)
class NotAParty:
    """A message naming a case whose owner never made its sender a party."""

    owner: str
    case_ref: str | None
    sender: str

    def __str__(self) -> str:
        case = self.case_ref or "this case"
        return (
            f"{self.sender} is not a party to {self.owner}'s case {case}: a message may name "
            "its own cases, or a case whose owner made it a party"
        )


def place_received(
    conn: Connection,
    holder: str,
    sender: str,
    thread_id: str,
    case_ref: str | None,
    codes: Iterable[str],
) -> Placement | NotAParty:
    """The case a message from ``sender`` received by ``holder`` is about.

    A thread id that is some authority's id for the case names that
    authority's case: the sender's own, or one whose owner made the sender a
    party (else ``NotAParty``). Any other naming (a case reference as the
    CorrelationId, an unknown id) means a case of the sender's that the
    holder has not seen yet, unless the holder keeps a thread of that
    reference the sender is a party to. A message never lands on a thread it
    has no standing in.
    """
    named = owner_named_by(thread_id, case_ref, codes)
    if named is not None:
        thread = get(conn, holder, thread_id)
        if named != sender and (thread is None or not is_party(thread, sender)):
            return NotAParty(named, case_ref, sender)
        return Placement(named, thread_id, case_ref, thread)
    candidates = threads_named(conn, holder, thread_id, case_ref)
    for thread in _by_preference(candidates, sender, holder):
        if is_party(thread, sender):
            return Placement(thread.owner, thread.correlation_id, thread.case_ref, thread)
    if case_ref:
        own_id = correlation_id(sender, case_ref)
        return Placement(sender, own_id, case_ref, get(conn, holder, own_id))
    # No case reference: the thread id is all the message names. A thread of that
    # id the sender has no standing in stays out of its reach, however it got it.
    existing = get(conn, holder, thread_id)
    if existing is not None and not is_party(existing, sender):
        return NotAParty(existing.owner, existing.case_ref, sender)
    return Placement(sender, thread_id, None, existing)


def _by_preference(threads: list[CaseThread], sender: str, holder: str) -> list[CaseThread]:
    """The sender's own case first, then the holder's, then others (by owner code)."""
    rank = {sender: 0, holder: 1}
    return sorted(threads, key=lambda t: (rank.get(t.owner, 2), t.owner, t.correlation_id))


def threads_for_own_message(
    conn: Connection, authority: str, thread_id: str, case_ref: str | None
) -> list[CaseThread]:
    """The threads an envelope from ``authority``'s own local system means.

    Its own case when it has one of that name (its local system names its own
    cases); otherwise every copy it keeps of another authority's case of that
    name, so that each one's protections apply.
    """
    candidates = threads_named(conn, authority, thread_id, case_ref)
    own = [t for t in candidates if t.owner == authority]
    return own or candidates
