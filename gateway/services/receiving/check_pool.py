"""A batch's checks shared between the consuming thread and worker processes.

A received message's checks (``checks``: parse, verify the signature, validate
the schema, decode, take the content digest) are about half of its CPU, and they
hold the GIL: libxmlsec1's verification and lxml's parser, as the checks call
them, do not release it (two threads checking one message each at once took
longer than one thread checking both: ``docs/performance.md``). One process
therefore checks on one core, whatever the machine has.

``check_processes: N`` in ``gateway.yaml`` starts N worker processes. A batch
of at least ``MIN_SPLIT`` messages is then cut, in order, into the consuming
thread's part and one part per worker: the workers check theirs while the
thread checks its own, and the results come back as plain data (``Passed``,
``Refused``), in the batch's order. The code is the same in both places: a
worker verifies with the trust store in force (sent to it as DER), validates
against the same schema, decrypts with the same key files, and judges the
signers' certificates at the batch's time (the gateway's clock, read once per
batch). Nothing else happens in a worker: recording, the appliers and the
receipts stay with the consuming thread and its one transaction per batch.

A worker that dies, a part not back by the batch's deadline (``part_timeout_s``
plus ``PER_MESSAGE_TIMEOUT_S`` a message of its largest part), or any other
failure to bring a part back loses nothing: the thread checks what is missing
itself (a check that fails for its own reasons fails there again, as without
workers), the processes are killed, and new ones are started no sooner than
``restart_pause_s`` later (until then the thread checks every message alone). A
reloaded region directory (``Gateway.reconfigure``) starts new processes with the
new settings and trust store. Workers ignore SIGINT and SIGTERM (the gateway
stops them) and end themselves when the gateway's process is gone, however it
ended.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import wait

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.context import Gateway
from gateway.cpu_budget import BUDGET, STAGES
from gateway.envelope.schema import SchemaValidator
from gateway.envelope.trust import TrustStore
from gateway.envelope.verifying import Verifier
from gateway.services.receiving.checks import Passed, Refused, Source, check
from gateway.settings import Settings
from gateway.transport.base import Delivery

__all__ = ["MIN_SPLIT", "STATS", "CheckPool", "CheckPoolCollector", "CheckStats"]

log = logging.getLogger(__name__)

# A smaller batch is checked by the thread alone: a part costs its round trip
# (about 0.1 ms, and the pickled results' 0.04 ms a message to read back).
MIN_SPLIT = 8
# The consuming thread's part is this much smaller than a worker's (by weight):
# besides its own checks it reads the workers' results back.
OWN_WEIGHT = 0.8
# A part of n messages is given PART_TIMEOUT_S + n * PER_MESSAGE_TIMEOUT_S; a
# message's checks take about 0.5 ms here.
PART_TIMEOUT_S = 5.0
PER_MESSAGE_TIMEOUT_S = 0.02
RESTART_PAUSE_S = 30.0


class CheckStats:
    """This process's check processes, for ``/metrics`` (``CheckPoolCollector``)."""

    def __init__(self) -> None:
        self.shared = 0
        """Messages whose checks a worker process did."""
        self.failures = 0
        """How many times the processes failed (one died, or a part did not come back)."""
        self.running = 0
        """Processes in service now (0 while paused after a failure, or closed)."""


STATS = CheckStats()
"""The process's figures: like ``cpu_budget.BUDGET``, one per process."""


class CheckPoolCollector(Collector):
    """``cafgw_check_processes``, ``cafgw_checked_in_processes_total`` and
    ``cafgw_check_process_failures_total`` of this process."""

    def __init__(self, stats: CheckStats = STATS) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "cafgw_check_processes",
            "Check processes in service in this gateway process (check_processes)",
        )
        running.add_metric([], self._stats.running)
        yield running
        shared = CounterMetricFamily(
            "cafgw_checked_in_processes",
            "Received messages whose checks a check process did",
        )
        shared.add_metric([], self._stats.shared)
        yield shared
        failures = CounterMetricFamily(
            "cafgw_check_process_failures",
            "Times the check processes failed (one ended, or a part did not come back)",
        )
        failures.add_metric([], self._stats.failures)
        yield failures


@dataclass(frozen=True)
class _Context:
    """What the checks read, in a worker process (``checks.CheckContext``)."""

    settings: Settings
    verifier: Verifier
    schema: SchemaValidator


@dataclass(frozen=True)
class _Checked:
    """A worker's part, checked: the results in order, and the CPU its stages took."""

    results: list[Passed | Refused]
    stages: dict[str, float]


_CONTEXT: _Context | None = None  # in a worker process, made by _start


def _start(settings: Settings, trust: TrustStore, budget: bool) -> None:
    """A worker's initialiser: its verifier and schema, once."""
    global _CONTEXT  # noqa: PLW0603 - the one per-process state a worker has
    # Ctrl-C or a supervisor's SIGTERM to the process group: the gateway finishes
    # its batch, with our parts, then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), daemon=True).start()
    limits = settings.limits
    verifier = Verifier(trust, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
    _CONTEXT = _Context(settings, verifier, SchemaValidator())
    BUDGET.enable(budget)


def _end_with(sentinel: int) -> None:
    """End this worker once the gateway's process is gone (killed, out of memory):
    the executor's queues would not tell it, and it would live on holding keys."""
    wait([sentinel])
    os._exit(0)


def _ready() -> bool:
    """A no-op part: starts a worker before the first batch needs it."""
    return _CONTEXT is not None


def _check_part(source: Source, deliveries: list[Delivery], now: datetime) -> _Checked:
    context = _CONTEXT
    if context is None:
        raise RuntimeError("a check process was not started by CheckPool")
    before = BUDGET.snapshot() if BUDGET.enabled else None
    results = [check(context, source, one, now) for one in deliveries]
    stages: dict[str, float] = {}
    if before is not None:
        after = BUDGET.snapshot()
        stages = {s: after[s] - before[s] for s in STAGES if after[s] > before[s]}
    return _Checked(results, stages)


class CheckPool:
    """Worker processes that check part of each large batch; used by one consuming thread.

    ``check`` runs on the consuming thread only; ``close`` once that thread stopped.
    """

    def __init__(
        self,
        processes: int,
        *,
        part_timeout_s: float = PART_TIMEOUT_S,
        restart_pause_s: float = RESTART_PAUSE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if processes < 1:
            raise ValueError("a check pool needs at least one process")
        self.processes = processes
        self._part_timeout_s = part_timeout_s
        self._restart_pause_s = restart_pause_s
        self._monotonic = monotonic
        self._executor: ProcessPoolExecutor | None = None
        self._made_for: tuple[Settings, TrustStore] | None = None
        self._paused_until = -math.inf
        self._closed = False
        # Guards ``_executor`` and ``_closed``: ``close`` (the stopping thread) and a
        # failure seen by the consuming thread may race for one executor. Whoever
        # takes it from ``_executor`` ends it, alone: two shutdowns at once close
        # its queues twice.
        self._lock = threading.Lock()
        self.failures = 0
        """How many times the processes failed (one died, or a part was late)."""
        self.shared = 0
        """Messages whose checks a worker process did."""

    def start(self, gw: Gateway) -> None:
        """Start the workers now, not at the first large batch (``Worker.start``)."""
        executor = self._executor_for(gw)
        if executor is not None:
            for _ in range(self.processes):
                executor.submit(_ready)

    def check(
        self, gw: Gateway, source: Source, deliveries: Sequence[Delivery]
    ) -> list[Passed | Refused]:
        """Every delivery's checks (``checks.check``), in order."""
        executor = self._executor_for(gw) if len(deliveries) >= MIN_SPLIT else None
        if executor is None:
            return [check(gw, source, one) for one in deliveries]
        now = gw.clock()
        n = len(deliveries)
        own = max(1, round(n * OWN_WEIGHT / (self.processes + OWN_WEIGHT)))
        rest = list(deliveries[own:])
        size = math.ceil(len(rest) / self.processes)
        parts = [rest[i : i + size] for i in range(0, len(rest), size)]
        futures: list[Future[_Checked]] = []
        try:
            for part in parts:
                futures.append(executor.submit(_check_part, source, part, now))
        except Exception as exc:  # why everything: whatever it is, the thread checks
            for future in futures:
                future.cancel()
            self._failed(executor, f"could not hand a part over ({type(exc).__name__}: {exc})")
            return [check(gw, source, one, now) for one in deliveries]
        out = [check(gw, source, one, now) for one in deliveries[:own]]
        # One deadline for the batch's parts, which run side by side.
        deadline = time.monotonic() + self._part_timeout_s + PER_MESSAGE_TIMEOUT_S * size
        failed = False
        for part, future in zip(parts, futures, strict=True):
            if failed:  # the processes were killed: the thread checks the rest
                out.extend(check(gw, source, one, now) for one in part)
                continue
            try:
                checked = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # why everything: whatever it is, the thread checks
                failed = True
                self._failed(executor, _why(exc, len(part)))
                out.extend(check(gw, source, one, now) for one in part)
                continue
            out.extend(checked.results)
            self.shared += len(part)
            STATS.shared += len(part)
            for stage, seconds in checked.stages.items():
                BUDGET.add(stage, seconds)
        return out

    def close(self) -> None:
        """Stop the workers, for good; a part still out is checked by the thread
        (``Worker.close`` may come while the consumer still finishes a batch)."""
        with self._lock:
            self._closed = True
        executor = self._take(None)
        if executor is not None:
            _end(executor)

    def _executor_for(self, gw: Gateway) -> ProcessPoolExecutor | None:
        made_for = self._made_for
        if (
            self._executor is not None
            and made_for is not None
            and made_for[0] is gw.settings
            and made_for[1] is gw.verifier.trust
        ):
            return self._executor
        if self._executor is not None:  # a reloaded directory: new settings and trust
            log.info("the region directory was reloaded: starting new check processes")
            old = self._take(self._executor)
            if old is not None:
                _end(old)  # nothing of theirs is out: this thread waits for every part
        if self._monotonic() < self._paused_until:
            return None
        with self._lock:
            if self._closed:
                return None
            executor = ProcessPoolExecutor(
                self.processes,
                # Not fork: this process runs threads (pika's, the ledger's) whose locks
                # a forked child would inherit held. The fork server starts clean.
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_start,
                initargs=(gw.settings, gw.verifier.trust, BUDGET.enabled),
            )
            self._executor = executor
            self._made_for = (gw.settings, gw.verifier.trust)
            STATS.running += self.processes
        return executor

    def _take(self, executor: ProcessPoolExecutor | None) -> ProcessPoolExecutor | None:
        """Take the executor in service (only if it is ``executor``, when given): the
        caller ends it. None: none, or another took it and ends it."""
        with self._lock:
            taken = self._executor
            if taken is None or (executor is not None and taken is not executor):
                return None
            self._executor, self._made_for = None, None
            STATS.running -= self.processes
            return taken

    def _failed(self, executor: ProcessPoolExecutor, why: str) -> None:
        """Kill ``executor``, the one the batch used, unless ``close`` took it (and
        ends it): stopping is not a failure to report."""
        with self._lock:
            if self._closed:
                return
        self.failures += 1
        STATS.failures += 1
        log.warning(
            "check processes: %s; the consuming thread checks what is missing, "
            "and the processes start again in %.0f s",
            why,
            self._restart_pause_s,
        )
        taken = self._take(executor)
        if taken is not None:
            _end(taken)
        self._paused_until = self._monotonic() + self._restart_pause_s


def _why(exc: BaseException, messages: int) -> str:
    if isinstance(exc, TimeoutError):
        return f"a part of {messages} was not back by the batch's deadline"
    return f"a part of {messages} did not come back ({type(exc).__name__}: {exc})"


def _end(executor: ProcessPoolExecutor) -> None:
    """Kill ``executor``'s processes, then shut it down: never waits for a stuck one.
    (Python 3.14 has ``terminate_workers()``; the mapping is the 3.11 way.)"""
    for process in list((executor._processes or {}).values()):
        process.kill()
    executor.shutdown(wait=True, cancel_futures=True)
