"""A gateway process leaves what start-up built out of the collector's full passes."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

from gateway import runtime
from gateway.cli import run as run_command
from gateway.heap import MALLOC_ARENAS, freeze_startup


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the test process itself goes on collecting everything


def test_freezing_collects_garbage_first_so_none_is_kept_for_ever(
    unfrozen: None,
) -> None:
    class Node:
        other: object = None

    cycle_a, cycle_b = Node(), Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a
    gone = weakref.ref(cycle_a)
    del cycle_a, cycle_b  # garbage only a collection can free

    frozen = freeze_startup()

    assert frozen == gc.get_freeze_count() > 0
    assert gone() is None  # collected, not frozen


def test_serving_the_api_freezes_the_start_up_heap_before_it_runs(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []

    class Server:
        def __init__(self, _config: object) -> None:
            pass

        def run(self) -> None:
            order.append("run")

    def freeze() -> int:
        order.append("freeze")
        return 1

    monkeypatch.setattr(runtime, "create_app", lambda _gw, _keys: object())
    monkeypatch.setattr(runtime, "uvicorn_config", lambda _settings, _app: object())
    monkeypatch.setattr(runtime.uvicorn, "Server", Server)
    monkeypatch.setattr(runtime, "freeze_startup", freeze)

    class Gw:
        settings = object()

    runtime.serve(runtime.Running(Gw(), None), None)  # type: ignore[arg-type]

    assert order == ["freeze", "run"]


_THREADS_ALLOCATING = """
import ctypes, sys, threading
if sys.argv[1] == "capped":
    from gateway.heap import cap_malloc_arenas
    print(cap_malloc_arenas(), flush=True)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
def work():  # ctypes lets go of the GIL: the threads meet in malloc
    for _ in range(20000):
        libc.free(libc.malloc(4096))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.malloc_stats()  # one "Arena n:" line per arena, on stderr
"""


def arenas(how: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_ALLOCATING, how],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return done.stdout.strip(), sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc allocator setting")
def test_a_gateway_process_keeps_at_most_two_malloc_arenas_for_its_threads() -> None:
    _said, uncapped = arenas("plain")
    said, capped = arenas("capped")
    assert said == "True"
    assert capped == MALLOC_ARENAS < uncapped


def test_an_arena_limit_in_the_environment_is_left_as_the_operator_set_it() -> None:
    said, _count = arenas("capped", {"MALLOC_ARENA_MAX": "4"})
    assert said == "False"


def test_cafgw_run_caps_the_arenas_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(run_command, "cap_malloc_arenas", lambda: calls.append("cap") or True)

    def stop(*_args: object, **_kwargs: object) -> None:
        calls.append("logging")
        raise SystemExit(0)

    monkeypatch.setattr(run_command.logging_setup, "configure", stop)
    with pytest.raises(SystemExit):
        run_command.run.__wrapped__(demo=False, config=None, verbose=False)  # type: ignore[attr-defined]
    assert calls == ["cap", "logging"]
