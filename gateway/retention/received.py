"""A received ErasureRequest: erase the copies its sender names, and prove it.

The sender erased a child's data and, as UK GDPR Article 19 asks, tells each
authority it disclosed the data to. This gateway erases the copies named
(by id and digest, and only those that sender sent it) exactly as an
erasure on request erases them here (``purge``: tombstones stay, derived
case threads, consent and existence entries go once nothing refers to
them), in the transaction that records the request. A copy the local
system never had is withdrawn first (a drop file not yet taken is taken
back); if the local system had any, the request is handed to it, so that it
erases its own copies. The signed receipt item says what was done: Action
``ERASED`` (``HandedOverAt``: since when the local system had the earliest
copy) or ``NOT_HELD``.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement

from gateway.errors import PolicyRefusal
from gateway.feature import ApplyContext, Effect, Received
from gateway.ledger.tables import messages
from gateway.lifecycle import held, receiver
from gateway.lifecycle.held import Fate
from gateway.model import ActionTaken, ErasureRequest
from gateway.retention import erasure, purge
from gateway.retention.plan import Due

RULE_REFERENCE = "erasure.request-reference"


def _said(erased: int, named: int, not_held: int, handed: list[str], run: str | None) -> str:
    parts = [f"erased {erased} of the {named} messages named" + (f" (run {run})" if run else "")]
    if not_held:
        parts.append(f"{not_held} not held here (never received from the sender, or erased)")
    if handed:
        parts.append(
            f"the local system had {len(handed)} of them since {min(handed)}: "
            "the request is passed on to it, to erase its copies"
        )
    elif erased:
        parts.append("none had reached the local system")
    return "; ".join(parts)


def on_erasure_request(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, ErasureRequest)
    if not erasure.REFERENCE.match(body.request_ref):
        raise PolicyRefusal(
            RULE_REFERENCE,
            f"erasure request {msg.message_id}: its reference is not a council reference "
            "(letters, digits, / . _ -): it would be kept and audited here",
        )
    conn, authority = ctx.conn, msg.authority

    def effect() -> None:
        copies = [
            held.matching(held.sent_by(conn, authority, msg.sender, ref), ref)
            for ref in body.messages
        ]
        found = [c for c in copies if c is not None and c.has_body]
        why = f"erasure request {body.request_ref} from {msg.sender}"
        fates = [held.take_back(ctx.kit, conn, authority, c, why) for c in found]
        handed = sorted(
            f.handed_over_at
            for f in fates
            if f.action is ActionTaken.PASSED_ON and f.handed_over_at
        )
        report = None
        if found:
            which: ColumnElement[bool] = messages.c.id.in_([c.pk for c in found])
            due = erasure.due_where(conn, authority, which, why)
            report = purge.erase_in(
                ctx.kit,
                conn,
                authority,
                due,
                kind="ERASURE",
                actor=f"erasure request from {msg.sender}",
                basis=f"{erasure.ARTICLE[body.ground]}; request {body.request_ref} "
                f"from {msg.sender}",
            )
            done = report
            ctx.later(lambda: _finish(ctx, done, due))
        said = _said(
            len(found),
            len(body.messages),
            len(body.messages) - len(found),
            [h.isoformat(timespec="seconds") for h in handed],
            report.run_id if report else None,
        )
        fate = Fate(
            ActionTaken.ERASED if found else ActionTaken.NOT_HELD,
            handed[0] if handed else None,
            said,
        )
        if not handed:
            ctx.keep_from_local_system(f"{why}: nothing to tell the local system ({said})")
        receiver.remember(conn, msg, "ERASURE", body.request_ref, fate, said, ctx.now)

    return effect


def _finish(ctx: ApplyContext, report: purge.RunReport, due: list[Due]) -> None:
    purge.finish(ctx.kit, report, due)
