"""What each feature keeps about a case thread or a child, erased with it.

One function per feature's state, each run in the purge's transaction with
the case threads whose every message is now erased and the children no
message refers to any more; each returns ``{what: how many}``. They live
together here until features declare their own (one line each to move).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection

from sqlalchemy import Connection, delete, select, update

from gateway.cases import store as cases
from gateway.cases.tables import case_log, case_threads
from gateway.crossborder import existence_store
from gateway.crossborder.consent_store import consent_register
from gateway.crossborder.existence_store import existence_index
from gateway.disputes.tables import dispute_events, disputes, escalations
from gateway.retention.tables import case_states

ERASED = "[erased]"
ERASED_CHILD = "erased"

# (connection, authority, threads fully erased, children no longer referred to) -> counts
Eraser = Callable[[Connection, str, Collection[str], Collection[str]], dict[str, int]]


def case_threads_and_log(
    conn: Connection, authority: str, threads: Collection[str], children: Collection[str]
) -> dict[str, int]:
    """The thread (case ref, child key, lead professionals, child's views) and its log."""
    threads = list(threads)
    if children:
        threads += [
            r[0]
            for r in conn.execute(
                select(case_threads.c.correlation_id).where(
                    case_threads.c.authority == authority,
                    case_threads.c.child_key.in_(list(children)),
                )
            ).all()
        ]
    if not threads:
        return {}
    cases.flush_log(conn)  # lines this transaction added go with the rest
    gone = conn.execute(
        delete(case_threads).where(
            case_threads.c.authority == authority, case_threads.c.correlation_id.in_(threads)
        )
    ).rowcount
    logged = conn.execute(
        delete(case_log).where(
            case_log.c.authority == authority, case_log.c.correlation_id.in_(threads)
        )
    ).rowcount
    conn.execute(
        delete(case_states).where(
            case_states.c.authority == authority, case_states.c.correlation_id.in_(threads)
        )
    )
    return {"case_threads": int(gone), "case_log_entries": int(logged)}


def existence_entries(
    conn: Connection, authority: str, threads: Collection[str], _children: Collection[str]
) -> dict[str, int]:
    """Keyed hashes of the child's identifiers that answer existence queries."""
    if not threads:
        return {}
    existence_store.flush(conn)  # rows this transaction added go with the rest
    gone = conn.execute(
        delete(existence_index).where(
            existence_index.c.authority == authority,
            existence_index.c.correlation_id.in_(list(threads)),
        )
    ).rowcount
    return {"existence_entries": int(gone)}


def consent_entries(
    conn: Connection, authority: str, _threads: Collection[str], children: Collection[str]
) -> dict[str, int]:
    """The consent register keeps each decision (source, action, scopes, dates) but no
    longer says whose it was or who gave it."""
    if not children:
        return {}
    rows = conn.execute(
        select(consent_register.c.id, consent_register.c.withdrawn).where(
            consent_register.c.authority == authority,
            consent_register.c.child_key.in_(list(children)),
        )
    ).all()
    for pk, withdrawn in rows:
        kept = [
            {"scope": w.get("scope"), "at": w.get("at"), "by": None} for w in json.loads(withdrawn)
        ]
        conn.execute(
            update(consent_register)
            .where(consent_register.c.id == pk)
            .values(
                child_key=ERASED_CHILD,
                case_ref=None,
                given_by=None,
                role_text=None,
                withdrawn=json.dumps(kept),
            )
        )
    return {"consent_entries": len(rows)}


def dispute_records(
    conn: Connection, authority: str, threads: Collection[str], _children: Collection[str]
) -> dict[str, int]:
    """Disputes about an erased case: what they said goes, that they happened stays."""
    if not threads:
        return {}
    rows = conn.execute(
        select(disputes.c.id, disputes.c.dispute_id).where(
            disputes.c.authority == authority, disputes.c.correlation_id.in_(list(threads))
        )
    ).all()
    if not rows:
        return {}
    pks = [r[0] for r in rows]
    ids = [r[1] for r in rows]
    conn.execute(
        update(disputes)
        .where(disputes.c.id.in_(pks))
        .values(
            case_ref=ERASED,
            subject=ERASED,
            asked=ERASED,
            outcome=None,
            interim_arrangement=None,
        )
    )
    conn.execute(
        update(dispute_events).where(dispute_events.c.dispute_pk.in_(pks)).values(text=None)
    )
    # Escalation notices sent are messages (route escalation) of the thread: the
    # purge of the thread's messages erases them with the rest.
    conn.execute(
        update(escalations)
        .where(escalations.c.authority == authority, escalations.c.dispute_id.in_(ids))
        .values(body=b"")
    )
    return {"disputes": len(rows)}


ERASERS: tuple[Eraser, ...] = (
    case_threads_and_log,
    existence_entries,
    consent_entries,
    dispute_records,
)
