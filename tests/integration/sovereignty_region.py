"""A region for the sovereignty tests: separate gateways on the real broker.

Dudley (332), Sandwell (333) and Wolverhampton (336) each run a gateway of
their own, as councils deploy it: their own SQLite ledger, their own keys
directory holding only their own private key (and the others' certificates),
their own broker connections and worker threads; they share nothing but the
broker. Wolverhampton is the hostile member: it signs with its own genuine
key and publishes with the routing keys the broker lets it use, so every
message it sends is authenticated; what it may change is for the receiving
gateway to decide.
"""

from __future__ import annotations

import io
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from support.gateways import config_copy, settings_for

from gateway.cases.identity import correlation_id
from gateway.cases.tables import case_threads
from gateway.context import Gateway, build
from gateway.crossborder.consent_store import consent_register
from gateway.disputes.tables import disputes
from gateway.envelope.keys import ensure_identity
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.model import (
    Body,
    Detail,
    Envelope,
    Header,
    LegalBasis,
    MessageType,
    Notification,
    NotificationType,
    Purpose,
    Safeguarding,
)
from gateway.services import outbound
from gateway.transport.base import OutgoingMessage, PublishOutcome, routing_key
from gateway.transport.rabbit import RabbitTransport
from gateway.worker import Worker

REGION = ("332", "333", "336")
ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"


def _keys(tmp: Path) -> dict[str, Path]:
    """A keys directory per authority: its own key, the others' certificates only."""
    made = {}
    scratch = tmp / "identities"
    probe = settings_for(tmp / "probe", REGION, keys_for=())
    for code in REGION:
        ensure_identity(code, probe.directory.get(code).name, scratch)
    for code in REGION:
        keys = tmp / code / "keys"
        for other in REGION:
            (keys / other).mkdir(parents=True, exist_ok=True)
            shutil.copy(scratch / other / "cert.pem", keys / other / "cert.pem")
        shutil.copy(scratch / code / "key.pem", keys / code / "key.pem")
        made[code] = keys
    shutil.rmtree(scratch)
    return made


@dataclass
class Region:
    tmp: Path
    gateways: dict[str, Gateway]
    workers: list[Worker] = field(default_factory=list)

    def gw(self, code: str) -> Gateway:
        return self.gateways[code]

    def submit(self, code: str, data: bytes, name: str) -> outbound.SubmitReport:
        return outbound.submit_local(self.gw(code), code, "dudley-csv", io.BytesIO(data), name)

    def envelope(
        self,
        sender: str,
        recipient: str,
        body: Body,
        *,
        correlation: str,
        basis: LegalBasis = LegalBasis.CONSENT,
        **header: Any,
    ) -> Envelope:
        fields: dict[str, Any] = {
            "consent_ref": f"{sender}/consent/1" if basis is LegalBasis.CONSENT else None,
            "purpose": Purpose.SHARE_CROSS_BORDER if basis is LegalBasis.CONSENT else None,
            "safeguarding": Safeguarding("A. Approver", "risk of significant harm")
            if basis is LegalBasis.SAFEGUARDING
            else None,
        }
        fields.update(header)
        return Envelope(
            Header(
                message_id=str(uuid.uuid4()),
                correlation_id=correlation,
                message_type=MessageType(type(body).__name__),
                sender=sender,
                recipient=recipient,
                created_at=datetime.now(UTC).replace(microsecond=0),
                legal_basis=basis,
                **fields,
            ),
            body,
        )

    def existence_answer(self, sender: str, recipient: str, query_id: str) -> Envelope:
        """``sender``'s "a CAF exists" answer to ``recipient``'s existence query
        ``query_id`` (one ``recipient`` asked, or not), on a thread of its own."""
        return self.envelope(
            sender,
            recipient,
            Notification(
                NotificationType.EXISTENCE_ANSWER,
                None,
                "A CAF exists",
                details=(Detail("match", "true"),),
            ),
            correlation=str(uuid.uuid4()),
            basis=LegalBasis.NO_PERSONAL_DATA,
            in_reply_to=query_id,
        )

    def publish(self, env: Envelope) -> str:
        """Sign ``env`` with its sender's own key and publish it as that sender may."""
        sender = env.header.sender
        signed = self.gw(sender).outbox.sign(env)
        (result,) = self.gw(sender).transport.publish(
            [
                OutgoingMessage(
                    routing_key=routing_key(
                        env.header.recipient, env.header.message_type.value, sender
                    ),
                    body=signed.body or b"",
                    message_id=signed.message_id,
                )
            ]
        )
        assert result.outcome is PublishOutcome.CONFIRMED, result
        return signed.message_id

    def received(self, code: str, message_id: str, timeout_s: float = 20.0) -> MessageRecord:
        """``code``'s inbound record of a message, once its gateway has recorded it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.gw(code).ledger.find(
                message_id=message_id, authority=code, direction=Direction.INBOUND
            )
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"{code} never recorded {message_id}")

    def thread_id(self, owner: str, case_ref: str) -> str:
        return correlation_id(owner, case_ref)

    def state(self, code: str) -> dict[str, Any]:
        """What ``code`` owns and no other authority may change: its case threads (every
        copy it keeps), its own consent decisions, its disputes, the restriction of what
        it received, and where its own messages went."""
        with self.gw(code).ledger.transaction() as conn:
            threads = sorted(
                tuple(r)
                for r in conn.execute(
                    select(case_threads).where(case_threads.c.authority == code)
                ).all()
            )
            own_consent = sorted(
                tuple(r)
                for r in conn.execute(
                    select(consent_register).where(
                        consent_register.c.authority == code,
                        consent_register.c.source == "LOCAL",
                    )
                ).all()
            )
            held = sorted(
                tuple(r)
                for r in conn.execute(select(disputes).where(disputes.c.authority == code)).all()
            )
            restricted = sorted(
                r.message_id
                for r in conn.execute(
                    select(messages.c.message_id).where(
                        messages.c.authority == code,
                        messages.c.direction == Direction.INBOUND.value,
                        messages.c.restricted.is_(True),
                    )
                ).all()
            )
            sent = sorted(
                (r.message_id, r.recipient, r.message_type)
                for r in conn.execute(
                    select(
                        messages.c.message_id, messages.c.recipient, messages.c.message_type
                    ).where(
                        messages.c.authority == code,
                        messages.c.direction == Direction.OUTBOUND.value,
                        messages.c.message_type != "Receipt",
                    )
                ).all()
            )
        return {
            "threads": threads,
            "consent": own_consent,
            "disputes": held,
            "restricted": restricted,
            "sent": sent,
        }


@contextmanager
def region(
    tmp: Path,
    amqp_url: str,
    configure: Callable[[str, Path], None] | None = None,
    **overrides: Any,
) -> Iterator[Region]:
    """The three gateways, running; stopped and closed afterwards (``configure(code,
    config_dir)`` may change an authority's copy of the config first; ``overrides``
    go to every one's settings)."""
    keys = _keys(tmp)
    existence_key: Path | None = None
    gateways: dict[str, Gateway] = {}
    for code in REGION:
        config = config_copy(tmp / code)
        if configure is not None:
            configure(code, config)
        if existence_key is None:
            existence_key = tmp / code / "secrets" / "regional-existence.key"
        else:  # one regional key, so keyed hashes compare across the region
            shutil.copy(existence_key, tmp / code / "secrets" / "regional-existence.key")
        settings = settings_for(
            tmp / code,
            (code,),
            ledger_url=f"sqlite:///{tmp / code / 'ledger.db'}",
            config=config,
            keys_for=(),
            broker={"url": amqp_url, "prefetch": 200},
            keys_dir=str(keys[code]),
            **overrides,
        )
        gateways[code] = build(settings, RabbitTransport.from_settings(settings))
    for gw in gateways.values():
        gw.transport.declare(gw.hosted)
    made = Region(tmp, gateways)
    try:
        for gw in gateways.values():
            worker = Worker(gw, RabbitTransport.from_settings(gw.settings))
            worker.start()
            made.workers.append(worker)
        yield made
    finally:
        for worker in made.workers:
            worker.close()
            worker.consumer_transport.close()
        for gw in gateways.values():
            gw.transport.close()
            gw.ledger.engine.dispose()
