"""Consent decisions and the consent in force: pure rules over a register's history.

A register entry is one decision about a child (given, refused, withdrawn in
whole or in part) with its *source*: ``LOCAL`` for the authority's own
decision (from its own case system), or the LA code of another authority
whose message stated it. Nothing is overwritten: the register is the history.

Which decision is in force is decided by the **date of the decision**, never
by the order of arrival: an old export re-posted after a withdrawal does not
re-open sharing (``stale``). A Gillick-competent child's own decision prevails
over a parent's; both stay recorded.

Whose decisions count (``basis_for``): for an authority's own case, only its
own decisions; for a case owned by another authority (a party sharing on the
owner's case), the owner's statements and, as a further restriction, the
authority's own. A third authority's statement counts for nothing: another
LA's message is that LA's statement, never a change to the receiver's consent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from gateway.model import ConsentAction, ConsentRecord, ConsentRole, ConsentScope

LOCAL = "LOCAL"
RULE_STALE = "consent.stale-decision"


def moment(value: datetime | date) -> datetime:
    """A decision date as an instant (a bare date is taken as its start, UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


def decided_at(consent: ConsentRecord, action: ConsentAction) -> datetime | None:
    """When the decision was made, as the record says (None if it does not say)."""
    if action == ConsentAction.WITHDRAWN:
        dates = [moment(w.at) for w in consent.withdrawn if w.at is not None]
        if dates:
            return max(dates)
    return moment(consent.recorded_at) if consent.recorded_at is not None else None


def fingerprint(action: ConsentAction, c: ConsentRecord) -> str:
    """What makes two decisions the same decision."""

    def iso(value: datetime | date | None) -> str | None:
        return value.isoformat() if value is not None else None

    return json.dumps(
        [
            action.value,
            c.given,
            c.given_by,
            c.role.value if c.role else None,
            c.gillick_competent,
            iso(c.recorded_at),
            sorted(s.value for s in c.scopes),
            sorted(c.named_las),
            sorted((w.scope.value, iso(w.at), w.by) for w in c.withdrawn),
        ],
        sort_keys=True,
    )


def action_of(consent: ConsentRecord) -> ConsentAction:
    """The action a local record's consent amounts to."""
    if not consent.given:
        return ConsentAction.REFUSED
    if consent.withdrawn:
        return ConsentAction.WITHDRAWN
    return ConsentAction.GIVEN


@dataclass(frozen=True)
class RegisterEntry:
    """One recorded consent decision."""

    entry_id: int
    case_ref: str | None
    source: str
    message_id: str | None
    action: ConsentAction
    consent: ConsentRecord
    entered_at: datetime

    @property
    def by_competent_child(self) -> bool:
        return self.consent.role == ConsentRole.CHILD and self.consent.gillick_competent

    @property
    def decided_at(self) -> datetime:
        """The decision's date, or when it was entered if the record gave none."""
        return decided_at(self.consent, self.action) or self.entered_at

    def order(self) -> tuple[datetime, int]:
        return (self.decided_at, self.entry_id)

    def fingerprint(self) -> str:
        return fingerprint(self.action, self.consent)


@dataclass(frozen=True)
class Effective:
    """The consent in force for a child, and the entry it comes from."""

    entry: RegisterEntry | None
    # A further decision that must also allow a share (an authority's own,
    # when it shares on another authority's case under that owner's consent).
    also: RegisterEntry | None = None

    @property
    def given(self) -> bool:
        return _given(self.entry) and (self.also is None or _given(self.also))

    def active_scopes(self) -> frozenset[ConsentScope]:
        if not self.given or self.entry is None:
            return frozenset()
        scopes = self.entry.consent.active_scopes()
        if self.also is not None:
            scopes &= self.also.consent.active_scopes()
        return scopes

    def withdrawn_scopes(self) -> frozenset[ConsentScope]:
        if self.entry is None:
            return frozenset()
        out = _withdrawn(self.entry)
        return out | _withdrawn(self.also) if self.also is not None else out

    @property
    def named_las(self) -> tuple[str, ...]:
        if self.entry is None:
            return ()
        named = self.entry.consent.named_las
        if self.also is not None and self.also.consent.named_las:
            mine = set(self.also.consent.named_las)
            return tuple(x for x in named if x in mine) if named else self.also.consent.named_las
        return named

    def reference(self, authority: str) -> str | None:
        """A reference to this consent, for the Header's ConsentRef."""
        if self.entry is None:
            return None
        consent = self.entry.consent
        when = (
            consent.recorded_at.isoformat()
            if consent.recorded_at
            else f"entry{self.entry.entry_id}"
        )
        case = self.entry.case_ref or "case"
        owner = authority if self.entry.source == LOCAL else self.entry.source
        return f"{owner}/{case}/consent/{when}"


def _given(entry: RegisterEntry | None) -> bool:
    if entry is None:
        return False
    if entry.action == ConsentAction.REFUSED:
        return False
    if entry.action == ConsentAction.WITHDRAWN and not entry.consent.withdrawn:
        return False  # a whole withdrawal
    return entry.consent.given


def _withdrawn(entry: RegisterEntry) -> frozenset[ConsentScope]:
    if not _given(entry):
        return frozenset(entry.consent.scopes) | {w.scope for w in entry.consent.withdrawn}
    return frozenset(w.scope for w in entry.consent.withdrawn)


def latest(history: Iterable[RegisterEntry]) -> RegisterEntry | None:
    """The decision in force among ``history``: a Gillick-competent child's own latest
    decision if there is one, else the latest decision of anyone; latest by date."""
    entries = list(history)
    child_own = [e for e in entries if e.by_competent_child]
    pool = child_own or entries
    return max(pool, key=RegisterEntry.order) if pool else None


def from_source(history: Iterable[RegisterEntry], source: str) -> list[RegisterEntry]:
    return [e for e in history if e.source == source]


def effective(history: Sequence[RegisterEntry]) -> Effective:
    """The consent in force from the authority's own decisions in ``history``."""
    return Effective(latest(from_source(history, LOCAL)))


def basis_for(history: Sequence[RegisterEntry], owner: str | None, authority: str) -> Effective:
    """The consent an authority may share under, about a case owned by ``owner``.

    Its own case (or no case): its own decisions. Another authority's case:
    the owner's statements, further restricted by the authority's own
    decisions where it has any. Nobody else's statements count.
    """
    own = latest(from_source(history, LOCAL))
    if owner is None or owner == authority:
        return Effective(own)
    return Effective(latest(from_source(history, owner)), also=own)


def is_repeat(
    history: Sequence[RegisterEntry], source: str, action: ConsentAction, consent: ConsentRecord
) -> bool:
    """Whether ``source`` has already recorded exactly this decision."""
    wanted = fingerprint(action, consent)
    return any(e.source == source and e.fingerprint() == wanted for e in history)


@dataclass(frozen=True)
class Stale:
    """A submitted decision older than the one in force (it changes nothing)."""

    submitted: datetime
    in_force: RegisterEntry

    def __str__(self) -> str:
        return f"{RULE_STALE}: {self.reason}"

    @property
    def reason(self) -> str:
        later = self.in_force
        what = later.action.value.lower()
        return (
            "the export's consent decision dated "
            f"{self.submitted.date().isoformat()} is older than the decision on record "
            f"({what}, dated {later.decided_at.date().isoformat()}); sharing stays as decided "
            "then: send a current export or record the new decision"
        )


def stale(
    history: Sequence[RegisterEntry],
    source: str,
    action: ConsentAction,
    consent: ConsentRecord,
) -> Stale | None:
    """The refusal for a submitted decision that is older than ``source``'s decision in
    force and differs from it (re-posting the decision in force is not stale)."""
    current = latest(from_source(history, source))
    submitted = decided_at(consent, action)
    if current is None or submitted is None:
        return None
    if current.fingerprint() == fingerprint(action, consent):
        return None
    if submitted < current.decided_at or (
        submitted == current.decided_at and is_repeat(history, source, action, consent)
    ):
        return Stale(submitted, current)
    return None
