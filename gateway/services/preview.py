"""What sending an export now would do, record by record, with nothing kept.

The records go through the real submission path (``outbound.submit_results``:
consent register, policy, signing, notices) on one database connection whose
transaction is rolled back at the end, so the preview reports exactly what a
send would do (sent where, held why, refused why, which notices) and leaves
no trace: no ledger row, no consent entry, no audit entry, nothing published.
Two things may still differ from a later real send: the message ids, and
anything that changes in between (new consent, another send of the same child).

On SQLite the preview holds the ledger's write lock while it runs (other
writers wait, up to the 30 s busy timeout), so previews are bounded in size by
the callers (``MAX_DRY_RUN_BYTES`` on the API).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import BinaryIO

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import Adapter, Result
from gateway.context import Gateway
from gateway.errors import LedgerError
from gateway.ledger.status import Status
from gateway.ledger.store import Ledger
from gateway.services import outbound
from gateway.services.outbound.outcomes import SubmitReport

BATCH = 200


class _Pinned(Ledger):
    """A ledger whose every transaction is one outer connection's (rolled back by the caller)."""

    def __init__(self, conn: Connection, like: Ledger) -> None:
        super().__init__(conn.engine, like.clock, like.audit_key)
        self._conn = conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            yield self._conn
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger unavailable: {exc}") from exc


def preview(
    gw: Gateway, adapter: Adapter, authority: str, stream: BinaryIO, source: str
) -> SubmitReport:
    """Each record of ``stream`` through policy as ``authority`` would send it now; nothing kept."""
    gw.signer(authority)  # only a hosted authority has a consent register and a key
    report = SubmitReport(source)
    with gw.ledger.engine.connect() as conn:
        outer = conn.begin()
        try:
            pinned = _Pinned(conn, gw.ledger)
            shadow = replace(gw, ledger=pinned, outbox=replace(gw.outbox, ledger=pinned))
            chunk: list[Result] = []
            for result in adapter.read(stream, source):
                chunk.append(result)
                if len(chunk) >= BATCH:
                    report.outcomes.extend(outbound.submit_results(shadow, authority, chunk))
                    chunk = []
            if chunk:
                report.outcomes.extend(outbound.submit_results(shadow, authority, chunk))
        finally:
            outer.rollback()
    return report


def summary(report: SubmitReport) -> str:
    """``N sent, N held (why: ...), N rejected`` over the records (not their notices)."""
    records = [o for o in report.outcomes if o.kind == "record"]
    held_why: Counter[str] = Counter()
    for o in records:
        if o.status == Status.HELD_LOCAL:
            held_why.update(set(o.reasons) or {"no reason recorded"})
    messages = sum(len(o.message_ids) for o in report.outcomes if o.status == Status.SIGNED)
    held = f"{report.held} held locally"
    if held_why:
        held += " (" + "; ".join(f"{n}: {why}" for why, n in held_why.most_common()) + ")"
    return (
        f"{report.source}: {report.queued} sent ({messages} messages), {held}, "
        f"{report.rejected} rejected"
    )
