"""What happened to each record of a submission, as the CLI shows it (send, run --demo)."""

from __future__ import annotations

from rich.table import Table

from gateway.ledger.status import Status
from gateway.services.outbound.outcomes import RecordOutcome, SubmitReport
from gateway.services.preview import summary

__all__ = ["outcome_table", "safe_reasons", "summary"]

_OUTCOME = {
    Status.SIGNED: "sent",
    Status.HELD_LOCAL: "held",
    Status.REJECTED: "rejected",
}


def safe_reasons(outcome: RecordOutcome, source: str) -> str:
    """Why a record was held or rejected, without the values it held.

    A rejected record's problems quote the offending values (a UPN, an NHS
    number, a date of birth, a postcode): the terminal, its scroll-back and
    any log it is piped to must not hold them. Only the columns are named;
    the full problems are in the ledger (``cafgw status MESSAGE_ID``, or
    ``GET /v1/messages/{id}``).
    """
    if outcome.status != Status.REJECTED:
        return "\n".join(outcome.reasons)
    prefix = f"{source}:{outcome.record}:"
    columns = dict.fromkeys(
        r[len(prefix) :].split(":", 1)[0] for r in outcome.reasons if r.startswith(prefix)
    )
    where = ", ".join(columns) or "the record"
    ids = " ".join(outcome.message_ids)
    return f"{len(outcome.reasons)} problem(s) in {where}; details: cafgw status {ids}"


def outcome_table(report: SubmitReport, title: str, kept: bool = True) -> Table:
    """One row per record (and per record's notices): outcome, recipients, ids, why.

    ``kept=False`` for a preview: its message ids were never kept, so none are shown.
    """
    table = Table(title=title)
    columns = ("record", "case", "outcome", "to", *(("message ids",) if kept else ()), "why")
    for col in columns:
        table.add_column(col, overflow="fold")
    for o in report.outcomes:
        why = safe_reasons(o, report.source)
        if not kept:
            why = why.split("; details: cafgw status")[0]
        row = [o.record, o.case_ref or "-", _OUTCOME.get(o.status, o.status.value)]
        row.append(", ".join(o.recipients) or "-")
        if kept:
            row.append("\n".join(o.message_ids) or "-")
        table.add_row(*row, why)
    return table
