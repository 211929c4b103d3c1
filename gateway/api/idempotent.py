"""``Idempotency-Key`` on the API's JSON actions that create something each time they
are asked (raising a dispute, asking an existence query).

Only ``POST /v1/messages`` honoured the key; elsewhere it was ignored, so a local
system retrying after a lost answer, as the README tells it to, raised a second
dispute against the same practitioner or asked a second existence query (one more
against the safeguarding rate). Here the same key and request get the first answer
again (``Idempotent-Replayed: true``) and nothing is done twice; the same key with
another request is a 409 (``gateway.services.idempotency``, whose keys these share).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.api.problems import conflict, problem
from gateway.context import Gateway
from gateway.errors import CafgwError
from gateway.services import idempotency

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# The answer to a key used before for another request, in the routes' OpenAPI
# ``responses`` (the schema is the API's one error shape, ``gateway.api.deps``).
KEY_CONFLICT = conflict(
    "This Idempotency-Key was used for another request: use a new key for a new request"
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="send the same key again after a lost answer: you get the first "
        "answer and nothing is done twice (kept for seven days)",
    ),
]


def once(
    gw: Gateway,
    authority: str,
    key: str | None,
    request: tuple[str, BaseModel],
    status_code: int,
    act: Callable[[], M],
) -> M | JSONResponse:
    """``act()``'s answer; with ``key``, the answer kept for it if ``request`` (the
    route and its body) was made with it before, without acting again."""
    if key is None:
        return act()
    route, body = request
    digest = idempotency.request_digest(route, body.model_dump_json())
    kept = idempotency.begin(gw.ledger, authority, key, digest, gw.clock())
    if kept is not None:
        return replayed(kept)
    answer = attempt(gw, authority, key, act)
    kept_answer = idempotency.Answer(status_code, answer.model_dump(mode="json"))
    idempotency.finish(gw.ledger, authority, key, kept_answer)
    return answer


def replayed(kept: idempotency.Answer) -> JSONResponse:
    """The answer kept for a key, given again."""
    return JSONResponse(
        kept.body, status_code=kept.status_code, headers={"Idempotent-Replayed": "true"}
    )


def attempt(gw: Gateway, authority: str, key: str, act: Callable[[], T]) -> T:
    """``act()`` for a key just begun (``idempotency.begin``); the caller keeps its answer.

    An answer that is a refusal (4xx) is kept here, so the retry hears it again; a
    failure that is not an answer (5xx, the ledger unreachable) releases the key.
    """
    try:
        return act()
    except CafgwError as exc:
        refused, problem_body, _ = problem(exc)
        if refused < 500:
            idempotency.finish(gw.ledger, authority, key, idempotency.Answer(refused, problem_body))
        else:
            idempotency.release(gw.ledger, authority, key)
        raise
    except BaseException:
        idempotency.release(gw.ledger, authority, key)
        raise
