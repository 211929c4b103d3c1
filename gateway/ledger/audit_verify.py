"""Checking the audit chain: every altered, inserted, deleted or downgraded entry.

A chain alone cannot show that its newest entries were cut off, nor that
all of it was rewritten by someone who could recompute the hashes; three
further checks cover that: every outbound message that disclosed personal
data must still have its DISCLOSURE entry; with an audit key the newest
entry must be keyed; and an anchor kept elsewhere (``cafgw audit head``, or
the heads peers hold, ``gateway.ledger.audit_anchor``) must still be in the
chain with the same hash.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, select

from gateway.ledger.audit import GENESIS, AuditEntry, count, entries, hashes_as
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages

PAGE = 10_000


def chain_problems(chain: Iterable[AuditEntry], key: bytes | None) -> list[str]:
    """Broken links, gaps, altered entries and plain entries after keyed ones."""
    return [problem for _, problem in chain_findings(chain, key)]


def first_break(chain: Iterable[AuditEntry], key: bytes | None) -> int | None:
    """The lowest sequence number at which the chain stops verifying, or None."""
    return min((seq for seq, _ in chain_findings(chain, key)), default=None)


def chain_findings(chain: Iterable[AuditEntry], key: bytes | None) -> list[tuple[int, str]]:
    """Each problem of ``chain_problems`` with the sequence number it starts at."""
    problems: list[tuple[int, str]] = []
    prev = GENESIS
    expected_seq = 1
    keyed_from: int | None = None
    last: AuditEntry | None = None
    unchecked = 0
    for entry in chain:
        if entry.seq != expected_seq:
            problems.append(
                (expected_seq, f"audit entry {expected_seq} is missing (next is {entry.seq})")
            )
        if entry.prev_hash != prev:
            problems.append(
                (
                    entry.seq,
                    f"audit entry {entry.seq}: previous hash does not match entry {entry.seq - 1}",
                )
            )
        if key is not None and hashes_as(entry, key):
            keyed_from = entry.seq if keyed_from is None else keyed_from
        elif hashes_as(entry, None):
            if keyed_from is not None:
                problems.append(
                    (
                        entry.seq,
                        f"audit entry {entry.seq} is not keyed but entry {keyed_from} is: "
                        "written without the audit key (rewritten?)",
                    )
                )
        else:
            problems.append(
                (entry.seq, f"audit entry {entry.seq}: content altered (hash mismatch)")
            )
            unchecked = unchecked or (entry.seq if key is None else 0)
        prev = entry.hash
        expected_seq = entry.seq + 1
        last = entry
    if key is not None and last is not None and not hashes_as(last, key):
        problems.append(
            (
                last.seq,
                f"the newest audit entry ({last.seq}) is not keyed although this gateway has an "
                "audit key: the chain was rewritten, or cut back to before it was keyed",
            )
        )
    if unchecked:
        problems.append(
            (
                unchecked,
                "no audit key was given: keyed entries read as altered (run with the gateway's "
                "keys_dir, which holds audit-chain.key)",
            )
        )
    return problems


def whole_chain(ledger: Ledger, up_to: int | None = None) -> list[AuditEntry]:
    """Every entry in order (those up to sequence number ``up_to`` when given)."""
    chain: list[AuditEntry] = []
    total = count(ledger)
    after = 0
    while len(chain) < total:
        page = entries(ledger, limit=PAGE, after_seq=after)
        if not page:
            break
        if up_to is not None and page[-1].seq >= up_to:
            chain.extend(e for e in page if e.seq <= up_to)
            break
        chain.extend(page)
        after = page[-1].seq
    return chain


def verify(ledger: Ledger, expect_head: tuple[int, str] | None = None) -> list[str]:
    """Problems found in the chain (empty when intact).

    ``expect_head`` is an anchor from ``cafgw audit head`` taken earlier:
    that entry must still be there with that hash, which catches entries
    cut off the end.
    """
    chain = whole_chain(ledger)
    problems = chain_problems(chain, ledger.audit_key)
    if expect_head is not None:
        seq, digest = expect_head
        found = next((e for e in chain if e.seq == seq), None)
        if found is None:
            problems.append(f"audit entry {seq} (the recorded head) is missing: entries were cut")
        elif found.hash != digest:
            problems.append(f"audit entry {seq} (the recorded head) has another hash")
    problems.extend(unaudited_disclosures(ledger, chain))
    return problems


def unaudited_disclosures(ledger: Ledger, chain: Iterable[AuditEntry]) -> list[str]:
    """Outbound messages with personal data whose DISCLOSURE entry is gone.

    A HELD_LOCAL message never left (it waits for consent, unsent): it has a
    body and a recipient but disclosed nothing, so it needs no entry. When it
    is released it becomes SIGNED and gets its DISCLOSURE entry then.
    """
    audited = {
        (e.event.message_id, e.event.digest) for e in chain if e.event.action == "DISCLOSURE"
    }
    query = select(messages.c.message_id, messages.c.digest, messages.c.authority).where(
        and_(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.legal_basis != "NO_PERSONAL_DATA",
            messages.c.recipient != messages.c.authority,
            HAS_BODY,
            messages.c.status != Status.HELD_LOCAL.value,
        )
    )
    with ledger.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        f"message {r.message_id} from {r.authority} disclosed personal data but has no "
        "DISCLOSURE audit entry (entry deleted?)"
        for r in rows
        if (r.message_id, r.digest) not in audited
    ]
