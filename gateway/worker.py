"""The gateway's background work: consume every queue through the one receiving
pipeline, publish the outbox, send receipts, re-send what got no receipt, and
run the features' jobs. Each loop runs in its own thread (pika connections
are per thread) until ``stop`` is set; a loop that fails logs the error and
carries on after a pause, so one bad turn never stops delivery. The sender,
receipt and handover loops sleep until there is work (``gateway.wakeups``):
woken within the process by the commit that created it, and on PostgreSQL
also by other processes' commits (LISTEN/NOTIFY, ``gateway.ledger.listener``),
so there they look at the ledger unwoken only every
``database.fallback_poll_s``; on SQLite (one gateway process, but
``cafgw send`` may fill the outbox from another) every ``SQLITE_FALLBACK_S``.
Periodic jobs, whose work falls due with time, look every ``idle_s`` of
their own, on PostgreSQL at least every ``database.job_poll_s``.

``run_round``/``run_until_idle`` run the same steps in turn, in the calling
thread, until nothing moves: what tests on the in-memory transport use
instead of threads.

Replicas (several gateway processes on one ledger) run every step: the
sender, receipt and handover steps claim their rows (the receipt step
publishes the receipts it signs itself, recorded already claimed:
``services.receipts``), the consumer shares the queues. A step that is a
periodic job (``once``: re-sends and the features' jobs but local handover)
runs only on the replica holding its lease (``gateway.ledger.jobs``), the
others skip it until that lease lapses.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.context import Gateway
from gateway.errors import BrokerUnavailableError, CafgwError
from gateway.ledger.handoff import Claimed, Handoff
from gateway.ledger.jobs import JobLeases
from gateway.ledger.listener import Listener
from gateway.services import delivery, receipts, receiving
from gateway.services.receiving.check_pool import CheckPool
from gateway.transport.base import Delivery, Disposition, Transport
from gateway.wakeups import OUTBOX, RECEIPTS, TOPICS, Wakeups

log = logging.getLogger(__name__)

# Receipt deadlines are seconds long: looking twice a second is plenty.
RESEND_PAUSE_S = 0.5
# SQLite: no notifications from other processes (``cafgw send``), so look often.
SQLITE_FALLBACK_S = 0.25
# The most one turn of the sender and receipt loops takes (messages).
SENDER_BATCH = 500
RECEIPT_BATCH = 5000
# The most messages handed to the sender loop and not yet taken (their bodies wait in
# memory): two full turns; beyond it the loop claims them from the ledger.
HANDOFF_CAPACITY = 2 * SENDER_BATCH


@dataclass(frozen=True)
class Step:
    """One periodic step: returns the work done; when idle, waits ``idle_s``, or for
    ``topic`` to be notified (then at most ``idle_s`` if given, else the worker's
    fallback period)."""

    name: str
    run: Callable[[], int]
    idle_s: float | None
    topic: str | None = None
    once: bool = False  # a periodic job: on one replica at a time
    # The most one run takes (a step woken by ``topic``): a run that took less left
    # nothing behind, so the loop looks again only if ``topic`` moved meanwhile.
    # None: after any work, look again at once.
    full: int | None = None


@dataclass
class Worker:
    gw: Gateway
    consumer_transport: Transport
    # Loops woken by Wakeups (sender, receipts, handover) look again after this long
    # even unwoken; None: ``database.fallback_poll_s`` on PostgreSQL (the listener
    # hears other processes), ``SQLITE_FALLBACK_S`` on SQLite.
    fallback_s: float | None = None
    # An idle periodic job (no topic) sleeps at least this long; None:
    # ``database.job_poll_s`` on PostgreSQL, nothing more than the job's own on SQLite.
    job_poll_s: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    wakeups: Wakeups = field(default_factory=Wakeups)
    leases: JobLeases | None = None  # made from gw's ledger and clock when not given
    listener: Listener | None = None  # on PostgreSQL, once started
    _unwatch: list[Callable[[], None]] = field(default_factory=list)
    # While the sender loop runs: what the ledger hands it (``gateway.ledger.handoff``).
    _handoff: Handoff | None = None
    # The OUTBOX generation, the hand-overs counted and the monotonic time at the
    # last claim of the outbox that took all there was (``_send``).
    _claimed: tuple[int, int, float] = (0, 0, float("-inf"))
    # The consuming thread's receipts awaiting their broker's confirms.
    _receipts: receiving.ReceiptsInFlight = field(default_factory=receiving.ReceiptsInFlight)
    # Worker processes sharing the consumer's checks (``check_processes``), or None.
    _checks: CheckPool | None = None

    def __post_init__(self) -> None:
        if self.leases is None:
            self.leases = JobLeases(self.gw.ledger, self.gw.clock)
        if self.fallback_s is None:
            self.fallback_s = (
                self.gw.settings.database.fallback_poll_s
                if self._on_postgresql()
                else SQLITE_FALLBACK_S
            )
        if self.job_poll_s is None:
            self.job_poll_s = self.gw.settings.database.job_poll_s if self._on_postgresql() else 0.0
        if self.gw.settings.check_processes and self._checks is None:
            self._checks = CheckPool(self.gw.settings.check_processes)

    @property
    def check_pool(self) -> CheckPool | None:
        """The processes sharing the consumer's checks (``check_processes``), if any."""
        return self._checks

    def _on_postgresql(self) -> bool:
        return self.gw.ledger.engine.dialect.name == "postgresql"

    def _handle(self, batch: Sequence[Delivery]) -> Sequence[Disposition]:
        # A message recorded owed a receipt wakes the receipt loop by itself (the
        # ledger marks the transaction: ``wakeups.watch``), unless the transaction
        # receipted it too (a small batch: ``receiving.pipeline``).
        return receiving.handle_batch(self.gw, batch, self._receipts, self._checks)

    def _send(self) -> int:
        """One turn of the sender loop: what was handed over, and a claim if one is due.

        A claim is due unless every wake-up since the last claim was a hand-over:
        rows recorded unclaimed (by another process, with the hand-off full,
        given back by a replica, due again for a re-send) wake the loop some
        other way, and on SQLite another process's rows wake nothing, so a
        claim is also due at least every fallback period. A due claim keeps
        half the turn for itself, and stays due while it comes back full, so a
        steady stream of hand-overs never starves what waits unclaimed.
        """
        handoff = self._handoff
        puts = handoff.puts if handoff is not None else 0
        # Read after ``puts``: a hand-over counts itself before it wakes the loop, so
        # one between the two reads can only make a claim due when it is not.
        generation = self.wakeups.generation(OUTBOX)
        now = time.monotonic()
        assert self.fallback_s is not None  # set in __post_init__
        last_generation, last_puts, last_at = self._claimed
        woken_otherwise = (
            generation - last_generation > puts - last_puts or now - last_at >= self.fallback_s
        )
        # At most a turn's worth: one publish of 1,000 at a bulk load's peak took the
        # whole path's sender over 150 MB (the bodies, their frames, their buffers).
        limit = SENDER_BATCH // 2 if woken_otherwise else SENDER_BATCH
        handed = handoff.take(limit) if handoff is not None else []
        claim = woken_otherwise or not handed
        # What the claim may take: the rest of the turn, and never less than half of it.
        room = max(SENDER_BATCH - sum(len(c.items) for c in handed), SENDER_BATCH // 2)
        summary = delivery.publish_outbox(
            self.gw,
            room,
            handed,
            claim=claim,
            requeue=handoff.requeue if handoff is not None else None,
        )
        if claim and summary.claimed < room:
            self._claimed = (generation, puts, now)  # took all there was
        return _left_outbox(summary)

    def _resend(self) -> int:
        changed = delivery.resend_overdue(self.gw)
        if changed:
            self.wakeups.notify(OUTBOX)  # RETRYING is back in the outbox
        return changed

    def steps(self) -> list[Step]:
        """The core steps, then every feature's jobs."""
        gw = self.gw
        core = [
            Step("sender", self._send, None, OUTBOX, full=SENDER_BATCH),
            Step(
                "receipts",
                lambda: receipts.send_receipts(gw, RECEIPT_BATCH),
                None,
                RECEIPTS,
                full=RECEIPT_BATCH,
            ),
            Step("resender", self._resend, RESEND_PAUSE_S, once=True),
        ]
        kit = gw.kit
        for feature in gw.features:
            for job in feature.jobs:
                core.append(
                    Step(
                        job.name,
                        functools.partial(job.step, kit),
                        job.idle_s,
                        job.topic,
                        once=not job.everywhere,
                    )
                )
        return core

    def _run(self, step: Step) -> int:
        """Run ``step`` once; a periodic job only where this replica holds its lease."""
        if step.once and self.leases is not None and not self.leases.held(step.name):
            return 0
        return step.run()

    def _loop(self, step: Step) -> None:
        while not self.stop.is_set():
            seen = self.wakeups.generation(step.topic) if step.topic else 0
            try:
                busy = self._run(step)
            except BrokerUnavailableError as exc:
                # gateway.transport.link has said the broker is down, once.
                log.debug("%s: %s", step.name, exc)
                self.stop.wait(1.0)
                continue  # look again after the pause, not after the fallback period
            except CafgwError as exc:
                log.warning("%s: %s", step.name, exc)
                self.stop.wait(1.0)
                continue
            except Exception:
                log.exception("%s failed; carrying on", step.name)
                self.stop.wait(1.0)
                continue
            if busy and not self._drained(step, busy, seen):
                continue
            if step.topic:
                # Asleep until there is work: no fixed wait between a message and its hop.
                assert self.fallback_s is not None  # set in __post_init__
                longest = self.fallback_s if step.idle_s is None else step.idle_s
                self.wakeups.wait(step.topic, seen, longest)
            else:
                # Work that falls due with time: nothing announces it.
                self.stop.wait(max(step.idle_s or 0, self.job_poll_s or 0))

    def _drained(self, step: Step, busy: int, seen: int) -> bool:
        """Whether a run that did ``busy`` work left nothing to look for at once.

        A run that took less than its most (``full``) took all there was when it
        looked; more only if the topic moved since (a commit during the run). Not
        looking again saves a transaction per message and hop at low rates, and
        under load the topic always moves, so the loop keeps going.
        """
        if step.full is None or step.topic is None or busy >= step.full:
            return False
        return self.wakeups.generation(step.topic) == seen

    def _consume(self) -> None:
        queues = self.gw.consumed_queues()
        try:
            while not self.stop.is_set():
                try:
                    self.consumer_transport.consume(
                        queues, self._handle, self.stop, self._receipts.settle_ready
                    )
                except BrokerUnavailableError as exc:
                    log.debug("consumer: %s; reconnecting", exc)
                    self._receipts.settle_ready()
                    self.stop.wait(1.0)
                except CafgwError as exc:
                    log.warning("consumer: %s; reconnecting", exc)
                    self._receipts.settle_ready()
                    self.stop.wait(1.0)
        finally:
            self._receipts.finish()
            if self._receipts:
                log.warning(
                    "%d receipts in flight left unsettled (the ledger does not answer); "
                    "they go out again once their claims lapse",
                    len(self._receipts),
                )

    def start(self) -> None:
        if self.gw.settings.broker.declare_topology:
            self.gw.transport.declare(self.gw.hosted)
        self._unwatch.append(self.wakeups.watch(self.gw.ledger.engine))
        if self._on_postgresql():
            self.listener = Listener(self.gw.ledger.engine, self.wakeups, self.gw.ledger.replica)
            self.listener.start()
        self.attach_handoff()
        if self._checks is not None:
            self._checks.start(self.gw)  # its processes start while the loops do
        loops: list[tuple[str, Callable[[], None]]] = [("consumer", self._consume)]
        for step in self.steps():
            loops.append((step.name, functools.partial(self._loop, step)))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"cafgw-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def attach_handoff(self) -> Handoff:
        """From now on, messages recorded for sending in this process are handed to this
        worker's sender loop, claimed (``gateway.ledger.handoff``); ``start`` does this."""
        self._handoff = Handoff(
            delivery.outbox_lease(self.gw),
            functools.partial(self.wakeups.notify, OUTBOX),
            HANDOFF_CAPACITY,
            self._release,
        )
        self.gw.ledger.handoff = self._handoff
        return self._handoff

    def close(self, timeout_s: float = 10.0) -> None:
        if self._handoff is not None and self.gw.ledger.handoff is self._handoff:
            self.gw.ledger.handoff = None  # from now on recorded unclaimed, for whoever runs
        if self._handoff is not None:
            # What waits, and what a transaction commits from now on, goes back to the
            # outbox; what the sender loop took it publishes or gives back itself.
            self._release(self._handoff.close())
            self._handoff = None
        self.stop.set()
        self.wakeups.notify(*TOPICS)  # wake sleeping loops so they see stop
        for thread in self.threads:
            thread.join(timeout_s)
        if self._checks is not None:
            self._checks.close()
        if self.listener is not None:
            self.listener.close()
        for unwatch in self._unwatch:
            unwatch()
        self._unwatch.clear()
        if self.leases is not None:
            try:
                self.leases.release()  # another replica takes the jobs over at once
            except CafgwError as exc:
                log.warning("giving up job leases: %s; they lapse by themselves", exc)

    def _release(self, claims: list[Claimed]) -> None:
        """Give rows handed over and not published back to the outbox at once (claims
        cleared, replicas woken), so a restart or another replica publishes them
        without waiting for the claims to lapse."""
        if not claims:
            return
        try:
            self.gw.ledger.release_claims(claims, wake=True)
        except CafgwError as exc:
            n = sum(len(c.items) for c in claims)
            log.warning("giving back %d handed-over messages: %s; claims lapse", n, exc)

    def run_round(self) -> int:
        """Run every step once and drain every consumed queue; the work done.

        For the in-memory transport (its ``consume`` returns once ``stop`` is
        set, which this does when the queues are empty).
        """
        moved = sum(self._run(step) for step in self.steps())
        return moved + self._drain(self.gw.consumed_queues())

    def run_until_idle(self, rounds: int = 50) -> int:
        """``run_round`` until nothing moves; the rounds taken (raises if never idle)."""
        for done in range(1, rounds + 1):
            if not self.run_round():
                return done
        raise CafgwError(f"the gateway did not settle after {rounds} rounds")

    def _drain(self, queues: Sequence[str]) -> int:
        depth = getattr(self.consumer_transport, "depth", None)
        if depth is None:
            raise CafgwError("run_until_idle needs a transport that reports queue depth")
        handled = 0
        waiting = [q for q in queues if depth(q)]
        if not waiting:
            return 0
        stop = threading.Event()

        def handle(batch: Sequence[Delivery]) -> Sequence[Disposition]:
            nonlocal handled
            handled += len(batch)
            result = self._handle(batch)
            if not any(depth(q) for q in waiting):
                stop.set()
            return result

        try:
            self.consumer_transport.consume(waiting, handle, stop)
        finally:
            self._receipts.finish()
        return handled


def _left_outbox(summary: delivery.PublishSummary) -> int:
    """Messages a sender turn took out of the outbox: confirmed, or returned (marked
    sent, to be re-sent by deadline); the failed ones stay for the next turn."""
    return summary.confirmed + summary.returned
