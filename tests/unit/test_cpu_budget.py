"""The CPU budget: stages charged once each, nothing while off, the ledger from the pool."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine, text
from support.clock import CpuClock

from gateway.cpu_budget import CpuBudget, CpuBudgetCollector


def test_a_budget_that_is_off_charges_nothing() -> None:
    clock = CpuClock()
    budget = CpuBudget(clock)
    with budget.timed("verify"):
        clock.spend(1.0)
    assert budget.snapshot()["verify"] == 0.0


def test_a_nested_stage_is_charged_to_itself_only() -> None:
    clock = CpuClock()
    budget = CpuBudget(clock)
    budget.enable()
    with budget.timed("verify"):
        clock.spend(0.25)
        with budget.timed("parse"):
            clock.spend(1.0)
        clock.spend(0.5)
    snap = budget.snapshot()
    assert snap["parse"] == 1.0
    assert snap["verify"] == 0.75


def test_an_absorbing_stage_keeps_what_it_calls() -> None:
    clock = CpuClock()
    budget = CpuBudget(clock)
    budget.enable()

    @budget.stage("sign")
    def sign() -> str:
        clock.spend(2.0)
        return "signed"

    with budget.timed("receipt"):
        clock.spend(1.0)
        assert sign() == "signed"
    snap = budget.snapshot()
    assert snap["receipt"] == 3.0
    assert snap["sign"] == 0.0


def test_a_stage_left_open_by_an_exception_does_not_swallow_later_stages() -> None:
    clock = CpuClock()
    budget = CpuBudget(clock)
    budget.enable()
    outer = budget.begin("ledger")
    budget.begin("appliers")  # never closed: its code raised
    clock.spend(1.0)
    budget.end(outer)
    with budget.timed("codec"):
        clock.spend(0.5)
    snap = budget.snapshot()
    assert snap["ledger"] == 1.0
    assert snap["codec"] == 0.5


def test_ledger_transactions_are_charged_from_the_connection_pool(tmp_path: Path) -> None:
    clock = CpuClock()
    budget = CpuBudget(clock)
    budget.enable()
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    budget.watch_engine(engine)
    with engine.begin() as conn:
        clock.spend(0.5)
        conn.execute(text("select 1"))
        with budget.timed("appliers"):
            clock.spend(2.0)
    engine.dispose()
    snap = budget.snapshot()
    assert snap["ledger"] == 0.5
    assert snap["appliers"] == 2.0


def test_metrics_show_the_stages_only_while_the_budget_is_on() -> None:
    clock = CpuClock()
    budget = CpuBudget(clock)
    registry = CollectorRegistry()
    registry.register(CpuBudgetCollector(budget))
    assert b"cafgw_stage_cpu_seconds" not in generate_latest(registry)
    budget.enable()
    with budget.timed("pika"):
        clock.spend(1.5)
    scraped = generate_latest(registry).decode()
    assert 'cafgw_stage_cpu_seconds_total{stage="pika"} 1.5' in scraped
    assert "cafgw_process_cpu_seconds_total" in scraped
