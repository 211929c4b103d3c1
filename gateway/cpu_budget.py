"""Where a process's CPU goes, by stage: the CPU budget ``make bench`` prints.

Off by default: a disabled stage costs one attribute check. ``cpu_budget:
true`` in ``gateway.yaml`` (or ``CAFGW_CPU_BUDGET=true``) switches it on at
start; ``make bench`` does so in both gateways. Each stage is measured with
``time.thread_time()`` of the thread that runs it (a syscall of about a
microsecond, which is why it is off in production and why the hot paths
time whole batches where they can).

Stages never overlap: time spent in a stage opened inside another counts
for the inner one only, except inside an *absorbing* stage (``appliers``,
``receipt``), which keeps everything it calls (its SQL, codec and signing),
so that its row says what that piece of work costs in total. Whatever no
stage claimed is the process CPU minus the stages: the bench shows it as
``other``.

The ledger is timed from the connection pool (``watch_engine``: checkout to
checkin brackets a transaction), so the ledger's code needs no timers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event

__all__ = ["ABSORBING", "BUDGET", "STAGES", "CpuBudget", "CpuBudgetCollector"]

STAGES = (
    "parse",
    "codec",
    "sign",
    "verify",
    "validate",
    "ledger",
    "appliers",
    "receipt",
    "pika",
)
ABSORBING = frozenset({"appliers", "receipt"})

P = ParamSpec("P")
R = TypeVar("R")


class _Frame:
    __slots__ = ("children_s", "stage", "started_s")

    def __init__(self, stage: str, started_s: float) -> None:
        self.stage = stage
        self.started_s = started_s
        self.children_s = 0.0


class _Timer:
    """``with budget.timed(stage):`` while the budget is on."""

    __slots__ = ("_budget", "_frame", "_stage")

    def __init__(self, budget: CpuBudget, stage: str) -> None:
        self._budget = budget
        self._stage = stage
        self._frame: _Frame | None = None

    def __enter__(self) -> None:
        self._frame = self._budget.begin(self._stage)

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._budget.end(self._frame)


class _Off:
    """The shared do-nothing timer handed out while the budget is off."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        return None


_OFF = _Off()


class CpuBudget:
    """CPU seconds per stage for this process; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self.enabled = False
        self._clock = clock
        self._lock = threading.Lock()
        self._seconds = dict.fromkeys(STAGES, 0.0)
        self._local = threading.local()
        self._engines: set[int] = set()

    def enable(self, on: bool = True) -> None:
        self.enabled = on

    def timed(self, stage: str) -> _Timer | _Off:
        """A context manager charging the calling thread's CPU to ``stage``."""
        return _Timer(self, stage) if self.enabled else _OFF

    def stage(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator form of :meth:`timed`."""

        def wrap(fn: Callable[P, R]) -> Callable[P, R]:
            def timed_call(*args: P.args, **kwargs: P.kwargs) -> R:
                if not self.enabled:
                    return fn(*args, **kwargs)
                frame = self.begin(name)
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.end(frame)

            timed_call.__name__ = getattr(fn, "__name__", "timed_call")
            timed_call.__doc__ = fn.__doc__
            timed_call.__wrapped__ = fn  # type: ignore[attr-defined]
            return timed_call

        return wrap

    def begin(self, stage: str) -> _Frame | None:
        """Open ``stage`` in this thread; None when off or inside an absorbing stage."""
        if not self.enabled:
            return None
        stack: list[_Frame] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        if stack and stack[-1].stage in ABSORBING:
            return None
        frame = _Frame(stage, self._clock())
        stack.append(frame)
        return frame

    def end(self, frame: _Frame | None) -> None:
        """Close a frame from :meth:`begin` (in the thread that opened it)."""
        if frame is None:
            return
        elapsed = self._clock() - frame.started_s
        stack: list[_Frame] = getattr(self._local, "stack", [])
        if frame not in stack:
            return  # closed from another thread, or twice: nothing sound to charge
        while stack[-1] is not frame:
            stack.pop()  # an inner frame that was never closed
        stack.pop()
        if stack:
            stack[-1].children_s += elapsed
        self.add(frame.stage, max(0.0, elapsed - frame.children_s))

    def add(self, stage: str, seconds: float) -> None:
        """Charge CPU measured elsewhere (another thread's clock) to ``stage``."""
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    def snapshot(self) -> dict[str, float]:
        """CPU seconds per stage so far, and ``process``: the whole process's CPU."""
        with self._lock:
            out = dict(self._seconds)
        out["process"] = time.process_time()
        return out

    def watch_engine(self, engine: Engine) -> None:
        """Charge every ledger transaction on ``engine`` (pool checkout to checkin)."""
        if id(engine) in self._engines:
            return
        self._engines.add(id(engine))

        def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
            record.info["cpu_budget_frame"] = self.begin("ledger")

        def checkin(_dbapi: Any, record: Any) -> None:
            if record is not None:
                self.end(record.info.pop("cpu_budget_frame", None))

        event.listen(engine, "checkout", checkout)
        event.listen(engine, "checkin", checkin)


class CpuBudgetCollector(Collector):
    """``cafgw_stage_cpu_seconds_total{stage}`` and ``cafgw_process_cpu_seconds_total``."""

    def __init__(self, budget: CpuBudget) -> None:
        self._budget = budget

    def collect(self) -> Iterator[Metric]:
        if not self._budget.enabled:
            return
        snap = self._budget.snapshot()
        stages = CounterMetricFamily(
            "cafgw_stage_cpu_seconds",
            "CPU seconds spent in each stage of message processing (cpu_budget on)",
            labels=["stage"],
        )
        for stage in STAGES:
            stages.add_metric([stage], snap.get(stage, 0.0))
        yield stages
        process = CounterMetricFamily(
            "cafgw_process_cpu_seconds", "CPU seconds of this gateway process (cpu_budget on)"
        )
        process.add_metric([], snap["process"])
        yield process


BUDGET = CpuBudget()
"""The process's budget: like a metrics registry, one per process."""
