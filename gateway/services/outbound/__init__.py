"""Accepting messages from a local system: convert, apply policy, sign, record.

A message is in the ledger (the outbox) before the caller gets an answer,
so a crash after acceptance loses nothing; the sender loop publishes it.
Every record ends in the ledger: queued to send, held locally, or rejected
with its reasons; none is dropped silently. Policy (``gateway.policy``)
decides, from the consent register at the moment of sending, what each
record produces: the record's own sends and the notices the guidance asks
for (reported as a second outcome, ``record`` suffixed ``:notices``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from adapters.base import Adapter, Converted, Rejected, Result
from gateway.cases.identity import correlation_id
from gateway.context import AdapterSet, Gateway
from gateway.errors import AdapterNotYoursError, InputLimitError
from gateway.ledger import locks
from gateway.services.outbound.envelopes import accept_envelope, submit_envelope
from gateway.services.outbound.outcomes import Progress, RecordOutcome, SubmitReport
from gateway.services.outbound.records import converted, rejected_record

__all__ = [
    "RecordOutcome",
    "SubmitReport",
    "accept_envelope",
    "own_adapter",
    "submit_envelope",
    "submit_local",
    "submit_results",
]

BATCH = 200


def _chunks(results: Iterator[Result], size: int) -> Iterator[list[Result]]:
    chunk: list[Result] = []
    for result in results:
        chunk.append(result)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def own_adapter(adapters: AdapterSet, adapter_name: str, authority: str) -> Adapter:
    """The adapter ``adapter_name``, if it belongs to ``authority`` (its mapping says so)."""
    adapter = adapters.get(adapter_name)
    if adapter.authority != authority:
        owner = adapter.authority or "no authority (add `authority:` to its mapping)"
        raise AdapterNotYoursError(
            f"adapter {adapter_name!r} belongs to {owner}, not {authority}: an authority "
            "submits only its own exports, through its own adapter"
        )
    return adapter


def submit_local(
    gw: Gateway,
    authority: str,
    adapter_name: str,
    stream: BinaryIO,
    source: str,
    progress: Progress | None = None,
    max_records: int | None = None,
    report: SubmitReport | None = None,
) -> SubmitReport:
    """Convert a local export and accept every record (queued, held or rejected).

    An adapter belongs to the authority its mapping names (``authority:``): only
    that authority may submit through it (AdapterNotYoursError, HTTP 403).
    With ``max_records``, a record past it stops the conversion with
    ``InputLimitError``; the batches before it stay accepted. Each batch's
    outcomes go to ``report`` (default: a new ``SubmitReport`` that keeps them)
    as soon as the batch is accepted.
    """
    adapter = own_adapter(gw.adapters, adapter_name, authority)
    gw.signer(authority)  # fail early if this gateway does not host the authority
    report = SubmitReport(source) if report is None else report
    results = adapter.read(stream, source)
    if max_records is not None:
        results = _at_most(results, max_records, source)
    for chunk in _chunks(results, BATCH):
        report.add(submit_results(gw, authority, chunk, progress))
    return report


def _at_most(results: Iterator[Result], most: int, source: str) -> Iterator[Result]:
    for n, result in enumerate(results, start=1):
        if n > most:
            raise InputLimitError(
                f"{source}: more than limits.max_upload_records ({most}) records; "
                f"the first {most - most % BATCH} are accepted, split the rest into another file",
                "max_upload_records",
                most,
            )
        yield result


def submit_results(
    gw: Gateway, authority: str, results: list[Result], progress: Progress | None = None
) -> list[RecordOutcome]:
    """Accept already converted records in one transaction (records first, then notices).

    First the transaction locks the records' case threads: what each decision
    reads (the thread, the consent register, what was already sent) is then
    what it writes over, not a copy another upload or a received message
    (a change of governing authority, a family restriction) changed meanwhile.
    """
    outcomes: list[RecordOutcome] = []
    notices: list[RecordOutcome] = []
    threads = [
        locks.thread(authority, correlation_id(authority, r.assessment.case_ref))
        for r in results
        if isinstance(r, Converted)
    ]
    with gw.ledger.transaction() as conn:
        locks.xact_lock(conn, threads)
        for result in results:
            if isinstance(result, Rejected):
                message, outcome = rejected_record(authority, result)
                gw.ledger.record([message], conn)
                outcomes.append(outcome)
                continue
            made = converted(gw, conn, authority, result)
            gw.outbox.queue(conn, made.messages, made.events)
            outcomes.extend(made.outcomes)
            notices.extend(made.notices)
    if progress is not None:
        for outcome in outcomes:
            progress(outcome)
    return outcomes + notices
