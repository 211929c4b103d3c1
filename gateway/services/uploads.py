"""A local export submitted through the API: kept off memory, checked against the limits.

``spool`` keeps an upload in a temporary file (memory holds at most
``SPOOL_MEMORY_BYTES`` of it, the file is unlinked and owner-only), refusing
it past ``limits.max_upload_bytes``. ``check_csv`` scans a CSV export once
before anything is converted: a line longer than ``limits.max_upload_line_bytes``,
a row wider than ``limits.max_upload_columns`` or more rows than
``limits.max_upload_records`` refuses the whole file with ``InputLimitError``
(HTTP 413) naming the limit and what came, and nothing is recorded.
``submit`` runs the checks and the conversion; the API calls it in a worker
thread so the event loop (every other authority's requests, ``/healthz``)
never waits for a conversion.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from gateway.context import Gateway
from gateway.errors import InputLimitError
from gateway.services import local_format, outbound
from gateway.settings import Limits

# An export past this is held in the file, not memory: 8 MiB was the largest single
# piece of the whole path's sending gateway's peak (a 10,000-record Dudley export,
# 3.7 MB, about 4 MB of Python memory while accepted; docs/performance.md).
SPOOL_MEMORY_BYTES = 1024 * 1024


def spool() -> BinaryIO:
    """An empty temporary file for an upload (in memory up to ``SPOOL_MEMORY_BYTES``)."""
    return cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))


def too_large(size: int | str, limits: Limits) -> InputLimitError:
    """The refusal of an upload of ``size`` bytes (or "more than ...")."""
    return InputLimitError(
        f"the export is {size} bytes, more than limits.max_upload_bytes "
        f"({limits.max_upload_bytes}); split it into smaller files",
        "max_upload_bytes",
        limits.max_upload_bytes,
    )


def _lines(stream: BinaryIO, source: str, limits: Limits) -> Iterator[str]:
    """The file's lines (decoded byte for byte), refusing one over the line limit."""
    most = limits.max_upload_line_bytes
    number = 0
    while line := stream.readline(most + 1):
        number += 1
        if len(line) > most and not (len(line) == most + 1 and line.endswith(b"\n")):
            raise InputLimitError(
                f"{source}: line {number} is longer than limits.max_upload_line_bytes "
                f"({most} bytes); is the file a CSV export with line ends?",
                "max_upload_line_bytes",
                most,
            )
        # Latin-1 maps every byte to one character: separators and quotes are ASCII in
        # every encoding an adapter reads, so rows and columns count the same.
        yield line.decode("latin-1")


def check_csv(stream: BinaryIO, source: str, limits: Limits) -> None:
    """Refuse a CSV export over a line, column or record limit; leave ``stream`` at its start."""
    reader = csv.reader(_lines(stream, source, limits))
    rows = 0
    try:
        for row in reader:
            if len(row) > limits.max_upload_columns:
                raise InputLimitError(
                    f"{source}: row {rows + 1} has {len(row)} columns, more "
                    f"than limits.max_upload_columns ({limits.max_upload_columns})",
                    "max_upload_columns",
                    limits.max_upload_columns,
                )
            if row:
                rows += 1
            if rows - 1 > limits.max_upload_records:
                raise InputLimitError(
                    f"{source}: more than limits.max_upload_records "
                    f"({limits.max_upload_records}) records; split the export",
                    "max_upload_records",
                    limits.max_upload_records,
                )
    except csv.Error:
        pass  # not readable as CSV: the adapter says where and why
    stream.seek(0)


def submit(
    gw: Gateway,
    authority: str,
    adapter_name: str,
    stream: BinaryIO,
    source: str,
    report: outbound.SubmitReport | None = None,
) -> outbound.SubmitReport:
    """Check ``stream`` against the upload limits, then convert and accept it (into
    ``report``, as ``outbound.submit_local`` does)."""
    limits = gw.settings.limits
    adapter = outbound.own_adapter(gw.adapters, adapter_name, authority)
    if local_format.media_type(adapter) == "text/csv":
        check_csv(stream, source, limits)
    return outbound.submit_local(
        gw,
        authority,
        adapter_name,
        stream,
        source,
        max_records=limits.max_upload_records,
        report=report,
    )
