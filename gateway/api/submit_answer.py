"""The answer to a submitted export, written as its records are accepted.

``POST /v1/messages?adapter=...`` answers with every record's outcome
(``SubmitOut``). Built at the end, that answer held each outcome three times
over (the outcomes, a pydantic model per record, then the JSON): 25 MB more
at the peak for a 10,000-record export (docs/performance.md, issue 14).
``SerializedReport`` instead turns each accepted batch's outcomes into their
JSON at once and keeps only that and the counts; ``body()`` is byte for byte
what FastAPI would have written for ``SubmitOut.of(report)``. ``response()``
sends those same bytes batch by batch rather than joined into one more copy
of the whole answer (5 MB at 10,000 records), with the same status and
headers (``Content-Length`` included: no chunked encoding).
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import TypeAdapter
from starlette.responses import StreamingResponse

from gateway.api.schemas import RecordOut, SubmitOut
from gateway.ledger.status import Status
from gateway.services.outbound import RecordOutcome, SubmitReport

_RECORD = TypeAdapter(RecordOut)
_ANSWER = TypeAdapter(SubmitOut | RecordOut)  # the route's response model
_NO_RECORDS = b'"records":[]}'


class SerializedReport(SubmitReport):
    """A ``SubmitReport`` that keeps its outcomes as the answer's JSON and counts."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        # Each accepted batch's records as JSON, every batch after the first with its
        # leading comma: the answer's records array is their concatenation.
        self._batches: list[bytes] = []
        self._counts = {Status.SIGNED: 0, Status.HELD_LOCAL: 0, Status.REJECTED: 0}

    def add(self, outcomes: list[RecordOutcome]) -> None:
        for o in outcomes:
            if o.kind == "record" and o.status in self._counts:
                self._counts[o.status] += 1
        if not outcomes:
            return
        batch = b",".join(_RECORD.dump_json(RecordOut.of(o), by_alias=True) for o in outcomes)
        self._batches.append(b"," + batch if self._batches else batch)

    def count(self, status: Status) -> int:
        return self._counts.get(status, 0)

    def body(self) -> bytes:
        """The JSON answer, as the route's response model serializes ``SubmitOut``."""
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """``body()`` in pieces: the head, each batch's records, the tail."""
        yield self._head()
        yield from self._batches
        yield b"]}"

    def response(self) -> StreamingResponse:
        """The 202 answer, ``body()``'s bytes sent as they are kept, never joined."""
        chunks = list(self.chunks())  # the pieces themselves, not copied
        return StreamingResponse(
            iter(chunks),
            status_code=202,
            media_type="application/json",
            headers={"Content-Length": str(sum(map(len, chunks)))},
        )

    def _head(self) -> bytes:
        """The answer up to its records array's first element."""
        head = _ANSWER.dump_json(
            SubmitOut(
                source=self.source,
                queued=self.queued,
                held=self.held,
                rejected=self.rejected,
                records=[],
            ),
            by_alias=True,
        )
        # The records are the model's last field: its empty list is the answer's tail.
        assert head.endswith(_NO_RECORDS), "SubmitOut's last field is its records"
        return head[: -len(_NO_RECORDS)] + b'"records":['
