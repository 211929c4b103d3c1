"""The answer to a submitted export, written as its records are accepted.

``POST /v1/messages?adapter=...`` answers with every record's outcome
(``SubmitOut``). Built at the end, that answer held each outcome three times
over (the outcomes, a pydantic model per record, then the JSON): 25 MB more
at the peak for a 10,000-record export (docs/performance.md, issue 14).
``SerializedReport`` instead turns each accepted batch's outcomes into their
JSON at once and keeps only that and the counts; ``body()`` is byte for byte
what FastAPI would have written for ``SubmitOut.of(report)``. ``response()``
sends those same bytes piece by piece rather than joined into one more copy
of the whole answer, with the same status and headers (``Content-Length``
included: no chunked encoding).

The records' JSON (about 0.5 KB a record: 5 MB at 10,000) is kept in memory
only up to ``ANSWER_MEMORY_BYTES``, then in a temporary file (unlinked and
owner-only, as an upload's spool: ``services.uploads``), so that the peak of a
process accepting an export no longer grows with the export's size (issue 14,
docs/performance.md). The file goes with the report.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator

from pydantic import TypeAdapter
from starlette.responses import StreamingResponse

from gateway.api.schemas import RecordOut, SubmitOut
from gateway.ledger.status import Status
from gateway.services.outbound import RecordOutcome, SubmitReport

_RECORD = TypeAdapter(RecordOut)
_ANSWER = TypeAdapter(SubmitOut | RecordOut)  # the route's response model
_NO_RECORDS = b'"records":[]}'
_TAIL = b"]}"

ANSWER_MEMORY_BYTES = 1024 * 1024
"""The records' JSON kept in memory; the rest goes to a temporary file."""
READ_BYTES = 64 * 1024


class SerializedReport(SubmitReport):
    """A ``SubmitReport`` that keeps its outcomes as the answer's JSON and counts."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        # Each accepted batch's records as JSON, every batch after the first with its
        # leading comma: the answer's records array is their concatenation.
        self._records = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed with the report)
            max_size=ANSWER_MEMORY_BYTES
        )
        self._size = 0  # bytes in ``_records``
        self._counts = {Status.SIGNED: 0, Status.HELD_LOCAL: 0, Status.REJECTED: 0}

    def add(self, outcomes: list[RecordOutcome]) -> None:
        for o in outcomes:
            if o.kind == "record" and o.status in self._counts:
                self._counts[o.status] += 1
        if not outcomes:
            return
        batch = b",".join(_RECORD.dump_json(RecordOut.of(o), by_alias=True) for o in outcomes)
        piece = b"," + batch if self._size else batch
        self._records.seek(0, io.SEEK_END)
        self._records.write(piece)
        self._size += len(piece)

    def count(self, status: Status) -> int:
        return self._counts.get(status, 0)

    def body(self) -> bytes:
        """The JSON answer, as the route's response model serializes ``SubmitOut``."""
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """``body()`` in pieces: the head, the records as kept, the tail."""
        yield self._head()
        self._records.seek(0)
        while piece := self._records.read(READ_BYTES):
            yield piece
        yield _TAIL

    def response(self) -> StreamingResponse:
        """The 202 answer, ``body()``'s bytes read from where they are kept as they are
        sent, never joined."""
        length = len(self._head()) + self._size + len(_TAIL)
        return StreamingResponse(
            self.chunks(),
            status_code=202,
            media_type="application/json",
            headers={"Content-Length": str(length)},
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
