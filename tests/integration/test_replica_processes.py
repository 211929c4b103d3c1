"""Replicas as real processes: three receiving and two sending ``cafgw run``
processes, each side on a PostgreSQL ledger of its own (a fresh database,
dropped after), one sender and one receiver SIGKILLed mid-stream.

``COUNT`` messages (600 by default; ``CAFGW_REPLICA_MESSAGES=5000`` for the
run issue 18 asks for) go from 332 to two recipients hosted by the same
three receivers, alternately: 336 hands them over by webhook, 335's local
system pulls them from the replicas' HTTP API (``inbox_puller``) and never
acknowledges ten of them, so the acknowledgement deadline (a periodic job)
passes for those. One sender is killed while it holds outbox claims on the
second hundred (the other paused meanwhile, so the claims are surely its);
the receiver killed, a quarter of the way through the webhook's share, is
the one holding the deadline job's lease, so another replica must take the
job over.

Counted outside the gateways:

- **Publishes, at the broker.** A tap queue bound like the recipients'
  inboxes holds one copy per publish (``broker_tap``; its depth from the
  broker, which the management API must come to show too, its copies
  counted by id). An *attempt* is what the
  sending ledger counts in ``attempts``: a publish the broker confirmed and
  the sender recorded (``mark_sent``). So every id must have been published
  exactly ``attempts`` times, but for the killed sender's claims: one it
  published and died before recording is one publish more than recorded
  (``attempts`` 0 when the receipt settled the row first, or 1 when the
  other sender published it again after the claim lapsed).
- **Handovers, at the local systems.** The pull inbox acknowledged each
  message exactly once and never served one after it was acknowledged; the
  webhook took each message, and only the killed receiver's one POST in
  flight may have come twice, with the same ``Idempotency-Key``.
- **Each periodic job's effect once.** Every message is recorded once and
  receipted ``ACCEPTED`` once; each never-acknowledged one is made
  ``UNDELIVERABLE`` once and reported in one receipt item, and the sender's
  ledger shows it so.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_systems import WebhookReceiver, secret_file
from sqlalchemy import ColumnElement, func, select

from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.envelope.keys import ensure_identity
from gateway.ledger.bodies import BODY
from gateway.ledger.records import NewMessage
from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, job_leases, messages
from gateway.model import Receipt
from gateway.private_files import write_private
from gateway.settings import load_settings
from tests.conftest import _pg_database
from tests.integration.broker_tap import depth, drain, management_depth, tap
from tests.integration.inbox_puller import InboxPuller
from tests.integration.procs import (
    ALL,
    ROOT,
    GatewayProcess,
    feed,
    feeder,
    free_port,
    signed_batch,
    wait_until,
    write_config,
)

COUNT = int(os.environ.get("CAFGW_REPLICA_MESSAGES", "600"))
SENDER, WEBHOOK, PULL = "332", "336", "335"
NEVER_ACKED = 10  # of the pull recipient's first messages
ACK_DEADLINE_S = 30  # the pull recipient's local acknowledgement deadline
CHUNK = 100  # messages signed and put in the outbox at a time: a stream, not one lump
CONFIG = ROOT / "config" / "gateway.yaml"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.serial,  # SIGKILLs five busy processes: alone, not beside other tests
    pytest.mark.timeout(300 + COUNT // 10),
]


@pytest.fixture
def second_pg_url() -> Iterator[str]:
    yield from _pg_database()


def test_three_receiver_and_two_sender_processes_one_of_each_killed_each_message_once(
    tmp_path: Path, vhost: str, pg_url: str, second_pg_url: str
) -> None:
    began = time.monotonic()
    keys = tmp_path / "keys"
    probe = load_settings(ROOT / "config", env={}, overrides={"keys_dir": str(keys)})
    for code in ALL:
        ensure_identity(code, probe.directory.get(code).name, keys)
    path, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as webhook:
        connectors = {
            WEBHOOK: {"kind": "webhook", "url": webhook.url, "hmac_secret_file": str(path)}
        }
        # 3 s webhook timeouts: handover claims are leased for 15 s (the minimum), so
        # the killed replica's claims lapse within the test's time.
        delivery = {**yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["delivery"]}
        delivery["local_timeout_s"] = 3
        receiving_config = {
            "delivery": delivery,
            "authority_delivery": {PULL: {"local_ack_deadline_s": ACK_DEADLINE_S}},
        }
        receivers = [
            gateway(
                tmp_path,
                f"receiver-{n}",
                (PULL, WEBHOOK),
                vhost,
                second_pg_url,
                connectors,
                receiving_config,
            )
            for n in "abc"
        ]
        # Short outbox claims (the least the lease rule allows with a 7 s confirm
        # timeout): the killed sender's rows pass to the other after 12 s, not 40.
        short_lease = {"broker": {"confirm_timeout_s": 7}, "database": {"outbox_lease_s": 12}}
        senders = [
            gateway(tmp_path, f"sender-{n}", (SENDER,), vhost, pg_url, config=short_lease)
            for n in "ab"
        ]
        token = shared_api_key(receivers, PULL)
        procs = receivers + senders
        sending = Ledger.open(pg_url)
        receiving = Ledger.open(second_pg_url)
        source = None
        try:
            starting = [threading.Thread(target=proc.start) for proc in procs]
            for thread in starting:
                thread.start()
            for thread in starting:
                thread.join(90)
            assert all(p.proc is not None and p.proc.poll() is None for p in procs), [
                p.tail(500) for p in procs
            ]
            started_s = time.monotonic() - began
            source = feeder(senders[0].settings)
            tapped = tap(vhost, source.topology.exchange, (PULL, WEBHOOK))
            webhook_total = sum((min(CHUNK, COUNT - s) + 1) // 2 for s in range(0, COUNT, CHUNK))
            sent: list[NewMessage] = []
            doomed: GatewayProcess | None = None
            held: set[str] = set()
            killed_at = 0.0

            def kill_a_receiver_a_quarter_of_the_way() -> bool:
                nonlocal doomed, killed_at
                if doomed is None and len(webhook.snapshot()[1]) >= webhook_total // 4:
                    doomed = deadline_holder(receiving, receivers)
                    doomed.kill()  # no shutdown code runs: its leases and claims lapse
                    killed_at = time.monotonic()
                return doomed is not None

            # The local system pulls from the start: the deadline runs from arrival.
            with InboxPuller([p.port for p in receivers], token) as puller:
                for start in range(0, COUNT, CHUNK):
                    size = min(CHUNK, COUNT - start)
                    to_webhook = signed_batch(source, SENDER, WEBHOOK, (size + 1) // 2)
                    to_pull = signed_batch(source, SENDER, PULL, size // 2)
                    if start == 0:
                        puller.never_ack = frozenset(m.message_id for m in to_pull[:NEVER_ACKED])
                    sent += [m for pair in zip_longest(to_webhook, to_pull) for m in pair if m]
                    if start == CHUNK:  # mid-stream, while it holds what it claimed of these
                        held = kill_while_claiming(
                            senders[1], senders[0], sending, source, sent[start:]
                        )
                    else:
                        feed(source, sent[start:])
                    kill_a_receiver_a_quarter_of_the_way()
                ignored = puller.never_ack
                pull_ids = {m.message_id for m in sent if m.recipient == PULL} - ignored
                webhook_ids = {m.message_id for m in sent if m.recipient == WEBHOOK}
                wait_until(kill_a_receiver_a_quarter_of_the_way, 120, "a quarter handed over")
                wait_until(
                    lambda: set(webhook.snapshot()[1]) >= webhook_ids,
                    120 + COUNT // 20,
                    "every webhook message handed over",
                )
                wait_until(
                    lambda: set(puller.snapshot()[1]) >= pull_ids,
                    120 + COUNT // 20,
                    "every pulled message acknowledged",
                )
                # The killed sender's claims lapse after database.outbox_lease_s (12 s),
                # the deadline job's lease after at most 40 s; then the receipts come
                # back to the sender.
                wait_until(
                    lambda: settled(sending) == (COUNT - len(ignored), len(ignored)),
                    180 + COUNT // 20,
                    "every message receipted, the never-acknowledged ones UNDELIVERABLE",
                )
            assert doomed is not None
            settled_s = time.monotonic() - killed_at
            run_s = time.monotonic() - began
        finally:
            for proc in procs:  # SIGKILL: a graceful stop is not what is tested here
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.kill()
            if source is not None:
                source.ledger.engine.dispose()
        calls, taken = webhook.snapshot()

    ids = {m.message_id for m in sent}
    # Publishes: one copy per publish in the tap, counted by the broker and by id.
    on_broker = depth(vhost, tapped)
    wait_until(
        lambda: management_depth(vhost, tapped) == on_broker,
        60,
        f"the management API to count the {on_broker} publishes too",
    )
    published = drain(vhost, tapped)
    assert sum(published.values()) == on_broker
    assert set(published) == ids
    attempts = outbound_attempts(sending)
    unrecorded = {m: published[m] - attempts[m] for m in ids if published[m] != attempts[m]}
    assert set(unrecorded.values()) <= {1}, unrecorded
    assert held and set(unrecorded) <= held

    # Handovers: the pull inbox exactly once, the webhook but for one POST in flight.
    served, acknowledged = puller.snapshot()
    assert acknowledged == Counter(dict.fromkeys(pull_ids, 1))
    assert puller.served_after_ack == []
    assert set(puller.answers) == {"acknowledged"}, puller.answers
    assert set(puller.unreachable) <= {doomed.port}, puller.unreachable
    repeated = {m: n for m, n in taken.items() if n > 1}
    assert set(taken) == webhook_ids
    assert len(repeated) <= 1 and set(repeated.values()) <= {2}, repeated
    assert all(c.key == c.message_id for c in calls)  # a repeat carries the same key

    # Each message recorded once; each periodic job's effect once.
    assert inbound_rows(receiving) == Counter(dict.fromkeys(ids, 1))
    expected = Counter({(m, "ACCEPTED"): 1 for m in ids})
    expected.update({(m, "UNDELIVERABLE"): 1 for m in ignored})
    assert receipt_outcomes(receiving) == expected
    assert undeliverable_entries(receiving) == Counter(dict.fromkeys(ignored, 1))
    finals = {
        r.message_id: r.status
        for r in sending.find(
            authority=SENDER, direction=Direction.OUTBOUND, limit=100_000, with_history=False
        )
    }
    assert {m for m, s in finals.items() if s is Status.UNDELIVERABLE} == ignored

    print(
        f"\n{COUNT} messages, 3 receivers + 2 senders: started in {started_s:.0f} s, "
        f"whole run {run_s:.0f} s, settled {settled_s:.0f} s after the receiver kill; "
        f"broker: {on_broker} publishes, ledger attempts {sum(attempts.values())}, "
        f"the killed sender held {len(held)} claims, published {len(unrecorded)} of them "
        f"without recording it; "
        f"webhook repeats: {len(repeated)}; pull: served {sum(served.values())} times "
        f"for {len(acknowledged)} acknowledged"
    )
    receiving.engine.dispose()
    sending.engine.dispose()


def gateway(
    tmp_path: Path,
    name: str,
    hosted: tuple[str, ...],
    amqp_url: str,
    ledger_url: str,
    connectors: dict[str, dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
) -> GatewayProcess:
    """One replica's config dir and process (not started)."""
    port = free_port()
    folder = write_config(
        tmp_path / name,
        hosted=hosted,
        amqp_url=amqp_url,
        ledger_url=ledger_url,
        keys_dir=tmp_path / "keys",
        port=port,
        connectors=connectors,
        gateway=config,
    )
    return GatewayProcess(name, folder, port, tmp_path / f"{name}.log")


def shared_api_key(replicas: list[GatewayProcess], code: str) -> str:
    """An API key of ``code`` that every replica accepts (each reads its own key file)."""
    first = ApiKeys(replicas[0].config_dir / "api-keys.json")
    # Unlimited for this test: the local system polls several times a second.
    token = first.issue(code, holder="pull test", rate_per_minute=100_000)
    for replica in replicas[1:]:
        write_private(replica.config_dir / "api-keys.json", first.path.read_bytes())
    return token


def kill_while_claiming(
    doomed: GatewayProcess,
    other: GatewayProcess,
    ledger: Ledger,
    source: Gateway,
    chunk: list[NewMessage],
) -> set[str]:
    """Feed ``chunk`` and SIGKILL ``doomed`` while it holds outbox claims
    on it; the ids it held (its claims outlive it, until their lease lapses).

    ``other`` is paused meanwhile (SIGSTOP), once the outbox is empty, so every claim
    seen is the doomed sender's, on ``chunk``.
    """
    wait_until(lambda: not outbox_rows(ledger), 30, "the outbox empty")
    assert other.proc is not None
    other.proc.send_signal(signal.SIGSTOP)
    try:
        feed(source, chunk)
        deadline = time.monotonic() + 30
        while not (seen := outbox_claims(ledger)):
            assert time.monotonic() < deadline, "the sender never claimed the chunk"
        doomed.kill()
        # What it held as it was killed: the claims seen just before, and those still
        # there after (read again only, a fast sender had recorded the first ones SENT
        # between the look and the kill, and this came back empty).
        return seen | outbox_claims(ledger)
    finally:
        other.proc.send_signal(signal.SIGCONT)


def outbox_claims(ledger: Ledger) -> set[str]:
    """Ids of outbox rows claimed by a sender and not yet recorded as sent."""
    return outbox_rows(ledger, messages.c.claimed_until.is_not(None))


def outbox_rows(ledger: Ledger, *where: ColumnElement[bool]) -> set[str]:
    """Ids of rows waiting in the outbox (to be published, or published and not recorded)."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(messages.c.message_id).where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.status.in_([s.value for s in OUTBOX_STATES]),
                *where,
            )
        ).all()
    return {r[0] for r in rows}


def deadline_holder(ledger: Ledger, replicas: list[GatewayProcess]) -> GatewayProcess:
    """The replica running the acknowledgement-deadline job now (its lease names its pid)."""
    with ledger.transaction() as conn:
        holder = conn.execute(
            select(job_leases.c.holder).where(job_leases.c.job == "local-deadline")
        ).scalar_one()
    pid = int(holder.split(":")[1])
    (found,) = [r for r in replicas if r.proc is not None and r.proc.pid == pid]
    return found


def settled(ledger: Ledger) -> tuple[int | None, int | None]:
    """(DELIVERED, UNDELIVERABLE) among the sender's messages."""
    counts = ledger.counts()
    return (
        counts.get((SENDER, "OUTBOUND", Status.DELIVERED.value)),
        counts.get((SENDER, "OUTBOUND", Status.UNDELIVERABLE.value)),
    )


def outbound_attempts(ledger: Ledger) -> Counter[str]:
    """The sending ledger's ``attempts`` per message id."""
    rows = ledger.find(
        authority=SENDER, direction=Direction.OUTBOUND, limit=100_000, with_history=False
    )
    return Counter({r.message_id: r.attempts for r in rows})


def inbound_rows(ledger: Ledger) -> Counter[str]:
    """Inbound rows per message id (receipts aside) in the receiving ledger."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(messages.c.message_id).where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.message_type != "Receipt",
            )
        ).all()
    return Counter(r[0] for r in rows)


def receipt_outcomes(ledger: Ledger) -> Counter[tuple[str, str]]:
    """(message id, outcome) over every signed receipt the receiving side recorded."""
    with ledger.transaction() as conn:
        bodies = conn.execute(
            select(BODY).where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.message_type == "Receipt",
            )
        ).all()
    found: Counter[tuple[str, str]] = Counter()
    for (body,) in bodies:
        env = element_to_envelope(xmlsafe.parse(bytes(body), max_bytes=10**8, max_depth=64))
        assert isinstance(env.body, Receipt)
        found.update((i.message_id, i.outcome.value) for i in env.body.items)
    return found


def undeliverable_entries(ledger: Ledger) -> Counter[str]:
    """How often the deadline job recorded each received message UNDELIVERABLE."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(messages.c.message_id, func.count())
            .join(history, history.c.message_pk == messages.c.id)
            .where(
                messages.c.direction == Direction.INBOUND.value,
                history.c.status == Status.UNDELIVERABLE.value,
            )
            .group_by(messages.c.message_id)
        ).all()
    return Counter({r[0]: int(r[1]) for r in rows})
