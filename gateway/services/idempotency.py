"""Idempotent submissions: a local system that retries ``POST /v1/messages`` after
a lost answer gets the first answer again, never a second submission (and so for
``POST /v1/disputes`` and ``POST /v1/existence-queries``: ``gateway.api.idempotent``).

The caller sends an ``Idempotency-Key`` header (any printable text up to 200
characters, unique per authority). The first request with a key reserves it
(a conditional insert: of two concurrent requests exactly one goes on) and
its answer is kept; a repeat with the same key and the same request gets
that answer, marked ``Idempotent-Replayed: true``; the same key with another
request, or while the first is still being handled, is refused (409). Keys
are kept for ``KEEP`` (seven days), then may be used again. A request that
failed for a reason that was not an answer (the gateway could not record
it) releases its key, so the retry is a fresh attempt.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.errors import ConflictError, LedgerError, MalformedInputError
from gateway.ledger.store import Ledger
from gateway.ledger.tables import idempotency_keys

KEEP = timedelta(days=7)
HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


@dataclass(frozen=True)
class Answer:
    """An answer kept for a key: the HTTP status and the JSON body."""

    status_code: int
    body: object


def request_digest(*parts: bytes | str | None) -> str:
    """What identifies a request: its parameters and body, hashed."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else (part or b"")
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def request_digest_of(adapter: str | None, source: str, body: IO[bytes]) -> str:
    """``request_digest(adapter, source, <body's bytes>)`` of a seekable file, read in
    chunks; leaves ``body`` at its start."""
    h = hashlib.sha256()
    for part in (adapter, source):
        data = (part or "").encode("utf-8")
        h.update(len(data).to_bytes(8, "big") + data)
    h.update(body.seek(0, io.SEEK_END).to_bytes(8, "big"))
    body.seek(0)
    while chunk := body.read(1024 * 1024):
        h.update(chunk)
    body.seek(0)
    return h.hexdigest()


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise MalformedInputError(
            f"{HEADER} must be 1 to 200 printable characters without spaces, not {key[:40]!r}"
        )
    return key


def begin(ledger: Ledger, authority: str, key: str, digest: str, now: datetime) -> Answer | None:
    """Reserve ``key`` for this request; the kept answer if it was answered before.

    ConflictError if the key was used for another request, or its first request
    is still being handled.
    """
    check_key(key)
    with ledger.transaction() as conn:
        conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.authority == authority,
                idempotency_keys.c.key == key,
                idempotency_keys.c.created_at < now - KEEP,
            )
        )
    try:
        with ledger.transaction() as conn:
            conn.execute(
                insert(idempotency_keys).values(
                    authority=authority,
                    key=key,
                    request_digest=digest,
                    status_code=0,
                    created_at=now,
                )
            )
        return None
    except LedgerError as exc:  # the key exists: what did it answer?
        if not isinstance(exc.__cause__, IntegrityError):
            raise
    with ledger.transaction() as conn:
        row = conn.execute(
            select(
                idempotency_keys.c.request_digest,
                idempotency_keys.c.status_code,
                idempotency_keys.c.response,
            ).where(idempotency_keys.c.authority == authority, idempotency_keys.c.key == key)
        ).first()
    if row is None:  # released meanwhile: the client may try again
        raise ConflictError(f"{HEADER} {key!r} is being released; send the request again")
    if row.request_digest != digest:
        raise ConflictError(
            f"{HEADER} {key!r} was already used for a different request; use a new key for "
            "a new submission"
        )
    if row.status_code == 0:
        raise ConflictError(
            f"a request with {HEADER} {key!r} is still being handled; ask again shortly"
        )
    return Answer(int(row.status_code), json.loads(row.response or "null"))


def finish(ledger: Ledger, authority: str, key: str, answer: Answer) -> None:
    """Keep the answer given to the first request with ``key``."""
    with ledger.transaction() as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.authority == authority, idempotency_keys.c.key == key)
            .values(status_code=answer.status_code, response=json.dumps(answer.body))
        )


def release(ledger: Ledger, authority: str, key: str) -> None:
    """Forget a reservation whose request got no answer worth keeping."""
    with ledger.transaction() as conn:
        conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.authority == authority,
                idempotency_keys.c.key == key,
                idempotency_keys.c.status_code == 0,
            )
        )
