"""A gateway process leaves what start-up built out of the collector's full passes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import runtime
from gateway.heap import freeze_startup


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
