"""Replicas of one gateway on one PostgreSQL ledger share the work, each piece once.

Two gateways (each its own engine, connection pool and worker steps, as two
processes would have) are built on one PostgreSQL database of the test's own
and run the same step at the same moment in two threads. Counted outside the
ledger where there is an outside: what the broker holds, what the local
system's webhook was given.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from local_systems import WebhookReceiver, secret_file, signed_inbound, with_connector
from sqlalchemy import func, select
from support.clock import Clock

from gateway.cases.tables import case_log, case_threads
from gateway.connectors import handover, state
from gateway.context import Gateway, build
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.feature import Feature, Job, Kit
from gateway.ledger import audit, locks
from gateway.ledger.bodies import BODY
from gateway.ledger.jobs import JobLeases
from gateway.ledger.records import NewMessage
from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.model import (
    Envelope,
    Header,
    MessageType,
    Notification,
    NotificationType,
    Receipt,
)
from gateway.services import delivery, receipts, receiving
from gateway.settings import Settings
from gateway.transport.base import Delivery, Verdict
from gateway.transport.memory import MemoryTransport
from gateway.transport.rabbit import RabbitTransport
from gateway.worker import Worker
from tests.integration.broker_tap import drain
from tests.integration.gateways import ROOT, make_settings, notification_envelope

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SENDER, RECIPIENT = "332", "336"


def together(replicas: Sequence[Gateway], step: Callable[[Gateway], int]) -> list[int]:
    """Run ``step`` on every replica at once, each until it finds nothing to do;
    the work each did. Any exception in a replica fails the test."""
    start = threading.Barrier(len(replicas))
    done = [0] * len(replicas)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait(10)
            idle = 0
            while idle < 3:  # three empty turns in a row: the other replica is done too
                moved = step(replicas[index])
                done[index] += moved
                idle = 0 if moved else idle + 1
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    assert not errors, errors
    return done


def replicas_of(settings: Settings, count: int, transport: Callable[[], object]) -> list[Gateway]:
    return [build(settings, transport()) for _ in range(count)]  # type: ignore[arg-type]


def close(replicas: Sequence[Gateway]) -> None:
    for gw in replicas:
        gw.transport.close()
        gw.ledger.engine.dispose()


def inbound(message: NewMessage, *statuses: Status) -> NewMessage:
    """The recipient's copy of a signed message, as the receiving pipeline records it."""
    return replace(
        message,
        direction=Direction.INBOUND,
        authority=RECIPIENT,
        statuses=tuple((s, None) for s in statuses),
        receipt_due=True,
        route_to=RECIPIENT,
    )


def test_two_replicas_publish_each_outbox_message_once_as_the_broker_counts(
    tmp_path: Path, pg_url: str, vhost: str
) -> None:
    settings = make_settings(tmp_path, (SENDER,), pg_url, vhost)
    replicas = replicas_of(settings, 2, lambda: RabbitTransport.from_settings(settings))
    try:
        replicas[0].transport.declare((SENDER, RECIPIENT))  # the recipient's inbox, to count
        sent = signed_inbound(replicas[0], SENDER, RECIPIENT, 600)
        with replicas[0].ledger.transaction() as conn:
            replicas[0].ledger.record(sent, conn)

        done = together(replicas, lambda gw: delivery.publish_outbox(gw, limit=25).confirmed)

        assert sum(done) == len(sent) and all(done), done  # both replicas took part
        on_broker = drain(vhost, replicas[0].topology.inbox(RECIPIENT))
        assert len(on_broker) == len(sent)
        assert on_broker == Counter({m.message_id: 1 for m in sent})
        with replicas[0].ledger.transaction() as conn:
            attempts = conn.execute(
                select(messages.c.attempts, func.count())
                .where(messages.c.direction == Direction.OUTBOUND.value)
                .group_by(messages.c.attempts)
            ).all()
        assert attempts == [(1, len(sent))]
        assert not any(
            replicas[0].ledger.counts().get((SENDER, "OUTBOUND", s.value)) for s in OUTBOX_STATES
        )
    finally:
        close(replicas)


def test_two_replicas_receipt_each_message_once_and_hand_each_over_once(
    tmp_path: Path, pg_url: str
) -> None:
    path, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as local:
        settings = with_connector(
            make_settings(tmp_path, (RECIPIENT,), pg_url, "amqp://unused/"),
            RECIPIENT,
            kind="webhook",
            url=local.url,
            hmac_secret_file=str(path),
        )
        replicas = replicas_of(settings, 2, MemoryTransport)
        try:
            peer = build(
                make_settings(tmp_path, (SENDER,), pg_url, "amqp://unused/"),
                MemoryTransport(),
            )
            received = [
                inbound(m, Status.RECEIVED, Status.VERIFIED)
                for m in signed_inbound(peer, SENDER, RECIPIENT, 300)
            ]
            peer.ledger.engine.dispose()
            with replicas[0].ledger.transaction() as conn:
                replicas[0].ledger.record(received, conn)

            receipted = together(replicas, lambda gw: receipts.send_receipts(gw, limit=20))
            handed = together(replicas, lambda gw: handover.deliver_pending(gw.kit, limit=10))

            ids = {m.message_id for m in received}
            # Receipts are signed by one replica at a time (the other skips its turn
            # meanwhile), so which replica signed how many is not fixed: only once each.
            assert sum(receipted) == len(ids), receipted
            assert receipt_items(replicas[0].ledger) == Counter(dict.fromkeys(ids, 1))
            assert sum(handed) == len(ids) and all(handed), handed
            calls, taken = local.snapshot()
            assert len(calls) == len(ids)
            assert taken == Counter(dict.fromkeys(ids, 1))
            statuses = replicas[0].ledger.counts()
            assert statuses[(RECIPIENT, "INBOUND", Status.ACKNOWLEDGED.value)] == len(ids)
        finally:
            close(replicas)


def test_a_replica_finding_another_signing_receipts_skips_its_turn_and_one_receipt_covers_all(
    tmp_path: Path, pg_url: str
) -> None:
    settings = make_settings(tmp_path, (RECIPIENT,), pg_url, "amqp://unused/")
    signing, other = replicas_of(settings, 2, MemoryTransport)
    try:
        peer = build(
            make_settings(tmp_path, (SENDER,), pg_url, "amqp://unused/"), MemoryTransport()
        )
        received = [
            inbound(m, Status.RECEIVED, Status.VERIFIED)
            for m in signed_inbound(peer, SENDER, RECIPIENT, 50)
        ]
        peer.ledger.engine.dispose()
        with other.ledger.transaction() as conn:
            other.ledger.record(received, conn)

        with signing.ledger.transaction() as turn:  # the first replica is mid-turn
            assert locks.try_xact_lock(turn, locks.RECEIPTS)
            assert receipts.send_receipts(other) == 0
            assert receipt_items(other.ledger) == Counter()
        covered = receipts.send_receipts(other)  # its turn is over: the next covers all

        assert covered == 50
        assert receipt_items(other.ledger) == Counter({m.message_id: 1 for m in received})
        with other.ledger.transaction() as conn:
            signed = conn.scalar(
                select(func.count()).where(
                    messages.c.direction == Direction.OUTBOUND.value,
                    messages.c.message_type == MessageType.RECEIPT.value,
                )
            )
        assert signed == 1
    finally:
        close([signing, other])


def receipt_items(ledger: Ledger) -> Counter[str]:
    """How many signed receipts recorded in the outbox cover each message id."""
    with ledger.transaction() as conn:
        bodies = conn.execute(
            select(BODY).where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.message_type == MessageType.RECEIPT.value,
            )
        ).all()
    covered: Counter[str] = Counter()
    for (body,) in bodies:
        env = element_to_envelope(xmlsafe.parse(bytes(body), max_bytes=10**7, max_depth=64))
        assert isinstance(env.body, Receipt)
        covered.update(item.message_id for item in env.body.items)
    return covered


def referral(gw: Gateway, correlation: str) -> NewMessage:
    """A signed significant-harm referral from the sender opening case thread ``correlation``."""
    template = notification_envelope(SENDER, RECIPIENT)
    header: Header = replace(template.header, correlation_id=correlation)
    body = Notification(
        NotificationType.SIGNIFICANT_HARM_REFERRAL,
        correlation,
        "A referral for a test case thread",
    )
    return gw.outbox.sign(Envelope(header, body))


def test_two_replicas_receiving_the_same_messages_at_once_record_and_apply_each_once(
    tmp_path: Path, pg_url: str
) -> None:
    settings = make_settings(tmp_path, (RECIPIENT,), pg_url, "amqp://unused/")
    replicas = replicas_of(settings, 2, MemoryTransport)
    try:
        peer = build(
            make_settings(tmp_path, (SENDER,), pg_url, "amqp://unused/"),
            MemoryTransport(),
        )
        issues = signed_inbound(peer, SENDER, RECIPIENT, 40)
        # two referrals on each of ten new case threads: one thread row each, whoever wins
        threads = [f"REF-{n:04d}" for n in range(10)]
        referrals = [referral(peer, t) for t in threads for _ in range(2)]
        peer.ledger.engine.dispose()
        queue = replicas[0].topology.inbox(RECIPIENT)
        sent = issues + referrals
        deliveries = [
            Delivery(
                queue,
                f"{RECIPIENT}.{m.message_type}.{SENDER}",
                m.body or b"",
                m.message_id,
                {},
                0,
                tag,
                user_id="guest",  # the broker account that published it (issue 13, item 2)
            )
            for tag, m in enumerate(sent)
        ]
        batches = [deliveries[i : i + 10] for i in range(0, len(deliveries), 10)]
        verdicts: list[Verdict] = []
        pending = [list(batches) for _ in replicas]

        def step(gw: Gateway) -> int:
            mine = pending[replicas.index(gw)]
            if not mine:
                return 0
            out = receiving.handle_batch(gw, mine.pop(0))
            verdicts.extend(d.verdict for d in out)
            return len(out)

        together(replicas, step)

        assert Counter(verdicts) == Counter({Verdict.ACK: 2 * len(sent)})
        rows = replicas[0].ledger.find(
            authority=RECIPIENT, direction=Direction.INBOUND, limit=10_000, with_history=False
        )
        assert Counter(r.message_id for r in rows) == Counter({m.message_id: 1 for m in sent})
        assert {r.status for r in rows} == {Status.VERIFIED}
        with replicas[0].ledger.transaction() as conn:
            thread_rows = conn.execute(
                select(case_threads.c.correlation_id, func.count())
                .where(case_threads.c.authority == RECIPIENT)
                .group_by(case_threads.c.correlation_id)
            ).all()
            logged = conn.execute(
                select(case_log.c.message_id, func.count())
                .where(case_log.c.authority == RECIPIENT, case_log.c.message_id.is_not(None))
                .group_by(case_log.c.message_id)
            ).all()
        # one thread row per referred case (its id is derived from the case reference)
        assert len(thread_rows) == len(threads) and {n for _, n in thread_rows} == {1}
        assert logged and all(n == 1 for _, n in logged), logged
    finally:
        close(replicas)


def test_a_periodic_job_runs_on_one_replica_and_another_takes_it_over_when_its_lease_lapses(
    tmp_path: Path, pg_url: str
) -> None:
    clock = Clock()
    ran: Counter[int] = Counter()
    settings = make_settings(tmp_path, (RECIPIENT,), pg_url, "amqp://unused/")
    replicas: list[Gateway] = []

    def tick(kit: Kit) -> int:
        ran[[gw.ledger for gw in replicas].index(kit.ledger)] += 1
        return 0

    counting = Feature("counting", jobs=(Job("tick", tick),))
    replicas.extend(
        build(settings, MemoryTransport(), clock=clock, features=[counting]) for _ in range(2)
    )
    workers = [
        Worker(gw, gw.transport, leases=JobLeases(gw.ledger, clock, lease_s=1.5)) for gw in replicas
    ]
    try:
        together(replicas, lambda gw: rounds(workers[replicas.index(gw)], ran, 10))
        # ``together`` runs three calls of ten rounds on each: one replica ran all 30 turns
        assert len(ran) == 1 and sum(ran.values()) == 30, ran
        (first,) = ran
        other = 1 - first

        # The holder is killed (it stops, giving nothing up): once its lease lapses
        # and the other replica looks again, the other runs the job, alone.
        ran.clear()
        clock.advance(2)
        time.sleep(0.6)  # the other's last answer ("not mine") is good for a third of a lease
        for _ in range(5):
            workers[other].run_round()
        assert ran == Counter({other: 5})
        workers[first].run_round()
        assert ran == Counter({other: 5})  # the old holder came back: it waits its turn

        # A clean stop gives the lease up: the first takes it over without the wait.
        workers[other].close()
        time.sleep(0.6)
        workers[first].run_round()
        assert ran == Counter({other: 5, first: 1})
    finally:
        close(replicas)


def rounds(worker: Worker, ran: Counter[int], count: int) -> int:
    """``count`` worker rounds, then report nothing moved (for ``together``)."""
    for _ in range(count):
        worker.run_round()
    return 0


def test_the_audit_chain_is_locked_only_at_commit_not_through_the_work_before_it(
    tmp_path: Path, pg_url: str
) -> None:
    settings = make_settings(tmp_path, (SENDER,), pg_url, "amqp://unused/")
    replicas = replicas_of(settings, 2, MemoryTransport)
    slow_appended = threading.Event()
    took: dict[str, float] = {}

    def slow(gw: Gateway) -> None:
        # Appends first, then goes on for a while (signing, recording) before its commit.
        with gw.ledger.transaction() as conn:
            audit.append(gw.ledger, [audit.AuditEvent("slow", "DISCLOSURE", SENDER)], conn)
            slow_appended.set()
            time.sleep(1.5)

    def quick(gw: Gateway) -> None:
        assert slow_appended.wait(10)
        started = time.monotonic()
        with gw.ledger.transaction() as conn:
            audit.append(gw.ledger, [audit.AuditEvent("quick", "DISCLOSURE", SENDER)], conn)
        took["quick"] = time.monotonic() - started

    try:
        threads = [
            threading.Thread(target=slow, args=(replicas[0],)),
            threading.Thread(target=quick, args=(replicas[1],)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert took["quick"] < 0.5, took  # not waiting for the other's 1.5 s
        assert [e.event.actor for e in audit.entries(replicas[0].ledger)] == ["quick", "slow"]
        assert audit.verify(replicas[0].ledger) == []
    finally:
        close(replicas)


# One replica starting: opens the ledger with every standard feature's tables
# once the test says go (so that all of them race on the fresh database).
START = """
import sys, time
from pathlib import Path
from gateway.features import standard
from gateway.ledger.store import Ledger
url, go = sys.argv[1], Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
Ledger.open(url, schemas=[t for f in standard() for t in f.tables]).engine.dispose()
print("opened", flush=True)
"""


def test_five_replicas_starting_together_on_a_fresh_ledger_all_start(
    tmp_path: Path, pg_url: str
) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START, pg_url, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        results = [proc.communicate(timeout=40) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert [p.returncode for p in procs] == [0] * 5, [err[-2000:] for _, err in results]
    assert all(out.strip() == "opened" for out, _ in results)


def test_a_replica_killed_holding_claims_loses_nothing_another_takes_them_once_they_lapse(
    tmp_path: Path, pg_url: str, vhost: str
) -> None:
    clock = Clock.starting_now()
    path, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as local:
        settings = with_connector(
            make_settings(tmp_path, (SENDER, RECIPIENT), pg_url, vhost),
            RECIPIENT,
            kind="webhook",
            url=local.url,
            hmac_secret_file=str(path),
        )
        doomed, survivor = (
            build(settings, RabbitTransport.from_settings(settings), clock=clock) for _ in range(2)
        )
        try:
            survivor.transport.declare((SENDER, RECIPIENT))
            ledger = survivor.ledger

            # The outbox: the doomed replica claims 40 of 100 rows and dies unpublished.
            sent = signed_inbound(survivor, SENDER, RECIPIENT, 100)
            with ledger.transaction() as conn:
                ledger.record(sent, conn)
            now, lease_s = clock(), settings.database.outbox_lease_s
            lease_until = now + timedelta(seconds=lease_s)
            claimed = doomed.ledger.claim_outbox(40, (SENDER,), now, lease_until)
            assert len(claimed) == 40
            assert until_idle(lambda: delivery.publish_outbox(survivor).confirmed) == 60
            clock.advance(lease_s + 1)  # the dead replica's lease lapses
            assert until_idle(lambda: delivery.publish_outbox(survivor).confirmed) == 40
            on_broker = drain(vhost, survivor.topology.inbox(RECIPIENT))
            assert on_broker == Counter({m.message_id: 1 for m in sent})

            # Handover: it claimed 20 of 50 received messages and died before handing them over.
            received = [
                inbound(m, Status.RECEIVED, Status.VERIFIED)
                for m in signed_inbound(survivor, SENDER, RECIPIENT, 50)
            ]
            with ledger.transaction() as conn:
                ledger.record(received, conn)
            now = clock()
            assert len(state.claim(doomed.ledger, RECIPIENT, now, now + LONG, 20)) == 20
            assert until_idle(lambda: handover.deliver_pending(survivor.kit)) == 30
            clock.advance(LONG.total_seconds() + 1)
            assert until_idle(lambda: handover.deliver_pending(survivor.kit)) == 20
            assert local.snapshot()[1] == Counter({m.message_id: 1 for m in received})

            # Receipts: it locked 25 of the 50 owed and its connection died mid-transaction.
            dying = doomed.ledger.engine.connect()
            dying.begin()
            assert len(doomed.ledger.claim_receipts_due(dying, (RECIPIENT,), 25)) == 25
            assert until_idle(lambda: receipts.send_receipts(survivor)) == 25
            dying.invalidate()  # the socket closes; PostgreSQL rolls its transaction back
            dying.close()
            assert wait_until(lambda: until_idle(lambda: receipts.send_receipts(survivor))) == 25
            assert receipt_items(survivor.ledger) == Counter({m.message_id: 1 for m in received})
        finally:
            close([doomed, survivor])


LONG = timedelta(seconds=handover.CLAIM_LEASE_S)


def until_idle(step: Callable[[], int]) -> int:
    """Run ``step`` until it does nothing; the work done."""
    done = 0
    while moved := step():
        done += moved
    return done


def wait_until(look: Callable[[], int], timeout_s: float = 10.0) -> int:
    """``look()`` again until it finds work (the server notices a dead socket a moment later)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = look()
        if found:
            return found
        time.sleep(0.1)
    return 0
