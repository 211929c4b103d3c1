"""What happened to each record of a submission, as the CLI shows it (send, run --demo)."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from gateway.ledger.status import Status
from gateway.services.outcomes import RecordOutcome, SubmitReport

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


def outcome_table(report: SubmitReport, title: str) -> Table:
    """One row per record (and per record's notices): outcome, recipients, ids, why."""
    table = Table(title=title)
    for col in ("record", "case", "outcome", "to", "message ids", "why"):
        table.add_column(col, overflow="fold" if col == "message ids" else "ellipsis")
    for o in report.outcomes:
        table.add_row(
            o.record,
            o.case_ref or "-",
            _OUTCOME.get(o.status, o.status.value),
            ", ".join(o.recipients) or "-",
            "\n".join(o.message_ids) or "-",
            safe_reasons(o, report.source),
        )
    return table


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
