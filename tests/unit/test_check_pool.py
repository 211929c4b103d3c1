"""Check processes judge every message as the consuming thread does, and lose none.

The attack corpus (tests/data/attacks/: the genuine message, the hostile ones
and those that must be normalised) goes through ``CheckPool.check`` with real
worker processes, and its results must equal the consuming thread's own
``checks.check``, result for result. Then the ways a pool fails: a worker
killed, a part that is late, a reloaded trust store.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.context import Gateway
from gateway.envelope.trust import TrustStore
from gateway.envelope.verifying import Verifier
from gateway.errors import ConfigError
from gateway.services.receiving import check_pool
from gateway.services.receiving.check_pool import (
    MIN_SPLIT,
    STATS,
    CheckPool,
    CheckPoolCollector,
)
from gateway.services.receiving.checks import Passed, Refused, Source, check, source_of
from gateway.settings import load_settings
from gateway.transport.base import Delivery
from gateway.transport.provenance import provenance_for
from gateway.transport.topology import Topology
from tests.data.attacks import make_corpus
from tests.unit.corpus_gateway import opened_corpus_gateway

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "attacks"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with opened_corpus_gateway(tmp_path) as gw:
        yield gw


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def pool(monotonic: Monotonic) -> Iterator[CheckPool]:
    made = CheckPool(1, monotonic=monotonic)
    yield made
    made.close()


def _delivery(gw: Gateway, entry: dict[str, object], tag: int) -> Delivery:
    origin = provenance_for(gw.settings.broker, Topology()).origin(
        str(entry["exchange"]),
        str(entry["routing_key"]),
        None if entry["user_id"] is None else str(entry["user_id"]),
        dict(entry["headers"]),  # type: ignore[call-overload]
    )
    return Delivery(
        queue=Topology().inbox(str(entry["inbox"])),
        routing_key=origin.routing_key,
        body=(CORPUS / str(entry["file"])).read_bytes(),
        message_id=None,
        headers=origin.headers,
        delivery_count=0,
        tag=tag,
        user_id=origin.user_id,
    )


def _batches(gw: Gateway) -> dict[Source, list[Delivery]]:
    """The whole corpus by source, each batch long enough to be shared."""
    by_source: dict[Source, list[Delivery]] = {}
    for tag, entry in enumerate(MANIFEST):
        one = _delivery(gw, entry, tag)
        by_source.setdefault(source_of(gw, one), []).append(one)
    return {
        source: batch * math.ceil(MIN_SPLIT / len(batch)) for source, batch in by_source.items()
    }


def _genuine(gw: Gateway, n: int) -> tuple[Source, list[Delivery]]:
    entry = next(m for m in MANIFEST if m["name"] == "good")
    batch = [_delivery(gw, entry, tag) for tag in range(n)]
    return source_of(gw, batch[0]), batch


def _alone(gw: Gateway, source: Source, batch: list[Delivery]) -> list[Passed | Refused]:
    return [check(gw, source, one) for one in batch]


def test_the_check_processes_judge_the_whole_attack_corpus_as_the_thread_does(
    gateway: Gateway, pool: CheckPool
) -> None:
    batches = _batches(gateway)
    checked = 0
    for source, batch in batches.items():
        assert pool.check(gateway, source, batch) == _alone(gateway, source, batch)
        checked += len(batch)
    assert checked >= len(MANIFEST)
    assert pool.shared > checked / 3  # the workers checked their parts, not the thread alone
    assert pool.failures == 0
    passed = [r for b in batches.items() for r in pool.check(gateway, *b) if isinstance(r, Passed)]
    refused = [
        r for b in batches.items() for r in pool.check(gateway, *b) if isinstance(r, Refused)
    ]
    assert passed and refused  # both kinds crossed the process boundary


def test_a_batch_smaller_than_the_split_is_checked_by_the_thread_alone(
    gateway: Gateway, pool: CheckPool
) -> None:
    source, batch = _genuine(gateway, MIN_SPLIT - 1)
    results = pool.check(gateway, source, batch)
    assert all(isinstance(r, Passed) for r in results) and len(results) == MIN_SPLIT - 1
    assert pool.shared == 0


def test_a_killed_check_process_loses_no_message_and_the_pool_starts_again_after_its_pause(
    gateway: Gateway, pool: CheckPool, monotonic: Monotonic
) -> None:
    source, batch = _genuine(gateway, 20)
    expected = _alone(gateway, source, batch)
    failures_before, shared_before = STATS.failures, STATS.shared
    assert pool.check(gateway, source, batch) == expected
    shared = pool.shared
    assert shared > 0
    assert _metric("cafgw_check_processes") == 1
    for child in multiprocessing.active_children():
        child.kill()
        child.join(10)
    assert pool.check(gateway, source, batch) == expected  # the thread checked it all
    assert pool.failures == 1
    assert pool.shared == shared
    # What /metrics says of it: one failure, none in service while paused.
    assert _metric("cafgw_check_process_failures") == STATS.failures == failures_before + 1
    assert STATS.shared == shared_before + shared
    assert _metric("cafgw_check_processes") == 0
    monotonic.now += check_pool.RESTART_PAUSE_S - 1
    assert pool.check(gateway, source, batch) == expected
    assert pool.shared == shared  # still pausing: the thread alone
    monotonic.now += 2
    assert pool.check(gateway, source, batch) == expected
    assert pool.shared > shared  # new processes share again
    assert pool.failures == 1


def test_a_part_not_back_in_time_is_checked_by_the_thread(
    gateway: Gateway, monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_pool, "PER_MESSAGE_TIMEOUT_S", 0.0)
    # Not started beforehand: the workers are still starting when the parts are due.
    pool = CheckPool(2, part_timeout_s=0.0, monotonic=monotonic)
    try:
        source, batch = _genuine(gateway, 12)
        assert pool.check(gateway, source, batch) == _alone(gateway, source, batch)
        assert pool.failures == 1  # one failure, however many parts it took with it
        assert pool.shared == 0
    finally:
        pool.close()


def test_closing_while_a_part_is_stuck_returns_at_once_and_the_thread_checks_the_part(
    gateway: Gateway, monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each executor is ended once: the closing thread and the consumer, which sees
    # its part fail as the processes are killed, must not both shut it down (two
    # shutdowns at once close its queues twice: EBADF).
    ended: list[object] = []
    end = check_pool._end

    def counted(executor: ProcessPoolExecutor) -> None:
        ended.append(executor)
        end(executor)

    monkeypatch.setattr(check_pool, "_end", counted)
    # The part's deadline is far off: only closing can end the wait.
    pool = CheckPool(1, part_timeout_s=60.0, monotonic=monotonic)
    source, batch = _genuine(gateway, 40)
    expected = _alone(gateway, source, batch)
    assert pool.check(gateway, source, batch) == expected  # the worker is up
    for child in multiprocessing.active_children():
        os.kill(child.pid or 0, signal.SIGSTOP)  # stuck: alive, but never answers
    results: list[list[Passed | Refused]] = []
    consumer = threading.Thread(target=lambda: results.append(pool.check(gateway, source, batch)))
    consumer.start()
    time.sleep(0.5)  # the consumer waits for the stuck part
    started = time.monotonic()
    pool.close()  # as Worker.close does, the consumer still in its batch
    assert time.monotonic() - started < 5
    consumer.join(30)
    assert results == [expected]
    assert len(ended) == len(set(map(id, ended))) == 1
    assert pool.failures == 0  # stopping is not a failure
    assert not multiprocessing.active_children()
    shared = pool.shared
    assert pool.check(gateway, source, batch) == expected
    assert pool.shared == shared  # closed for good: the thread alone, no new processes
    assert not multiprocessing.active_children()


def test_check_processes_end_when_the_gateways_process_is_killed(tmp_path: Path) -> None:
    script = f"""
import sys, time, multiprocessing
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from gateway.services.receiving.check_pool import CheckPool
from tests.unit.corpus_gateway import corpus_gateway
gw = corpus_gateway(Path({str(tmp_path)!r}))
pool = CheckPool(2)
pool.start(gw)
while len(multiprocessing.active_children()) < 2:
    time.sleep(0.05)
print(" ".join(str(c.pid) for c in multiprocessing.active_children()), flush=True)
time.sleep(600)
"""
    gateway = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert gateway.stdout is not None
        workers = [int(pid) for pid in gateway.stdout.readline().split()]
        assert len(workers) == 2
        gateway.kill()  # SIGKILL: nothing of the gateway runs to stop them
        gateway.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        gateway.kill()


def _metric(name: str) -> float:
    (family,) = [f for f in CheckPoolCollector().collect() if f.name == name]
    (sample,) = family.samples
    return float(sample.value)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_reloaded_trust_store_reaches_the_check_processes(
    gateway: Gateway, pool: CheckPool
) -> None:
    source, batch = _genuine(gateway, 12)
    assert all(isinstance(r, Passed) for r in pool.check(gateway, source, batch))
    kept = gateway.verifier.trust
    gateway.verifier.replace_trust(TrustStore.from_mapping({}))  # nobody pinned any more
    try:
        results = pool.check(gateway, source, batch)
        assert results == _alone(gateway, source, batch)
        assert all(isinstance(r, Refused) and r.reason.startswith("signature:") for r in results)
    finally:
        gateway.verifier.replace_trust(kept)
    assert pool.shared >= 2 * (len(batch) // 2)  # both batches were shared
    assert all(isinstance(r, Passed) for r in pool.check(gateway, source, batch))


def test_the_check_processes_judge_certificates_at_the_gateways_time(
    gateway: Gateway, pool: CheckPool
) -> None:
    source, batch = _genuine(gateway, 12)
    # 332's certificate is valid now (2026-2030) but not at the gateway's time: a
    # process judging by its machine's clock would let these through.
    later = datetime(2031, 1, 1, tzinfo=UTC)
    limits = gateway.settings.limits
    moved = replace(
        gateway,
        clock=lambda: later,
        verifier=Verifier(
            gateway.verifier.trust,
            max_bytes=limits.max_message_bytes,
            max_depth=limits.max_xml_depth,
            clock=lambda: later,
        ),
    )
    results = pool.check(moved, source, batch)
    assert results == _alone(moved, source, batch)
    assert all(
        isinstance(r, Refused) and "valid at 2031-01-01T00:00:00Z" in r.reason for r in results
    )
    assert pool.shared > 0


def test_a_trust_store_travels_to_another_process_whole() -> None:
    certs = {
        code: [make_corpus.corpus_cert(label) for label in labels]
        for code, labels in make_corpus.PINNED.items()
    }
    ca = make_corpus.corpus_cert("336")
    until = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    store = TrustStore.from_mapping(certs, regional_ca=ca, retire_at={b"\x01" * 32: until})
    assert pickle.loads(pickle.dumps(store)) == store


def test_a_negative_number_of_check_processes_is_refused_naming_the_setting(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="check_processes"):
        load_settings(ROOT / "config", env={}, overrides={"check_processes": -1})
