"""Erasure and retention at both ends, on the real broker with two gateways and their
own ledgers: afterwards a grep of the test's whole var/ (ledgers, file drops, logs)
finds no trace of the child's name, UPN or postcode, and both audit chains verify."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from retention_support import JAYDEN, SIOBHAN, found_in
from typer.testing import CliRunner

from gateway.cli import app
from gateway.envelope.keys import ensure_identity
from gateway.ledger import audit, audit_key
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.lifecycle import outcomes
from gateway.logging_setup import json_handler
from gateway.model import ErasureGround
from gateway.retention import erasure
from gateway.services import outbound
from gateway.settings import Settings, load_settings
from tests.integration.gateways import ALL, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
UPN = SIOBHAN[1]


def _config(var: Path, name: str, **retention: object) -> Path:
    """A copy of the project's config (its retention.yaml changed by ``retention``)."""
    folder = var / f"config-{name}"
    shutil.copytree(ROOT / "config", folder)
    path = folder / "retention.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(retention)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return folder


def _settings(
    var: Path,
    name: str,
    hosted: tuple[str, ...],
    amqp: str,
    drop: Path | None = None,
    config_name: str | None = None,
    **retention: object,
) -> Settings:
    overrides: dict[str, object] = {
        "hosted": list(hosted),
        "broker": {"url": amqp, "prefetch": 200},
        "database": {"url": f"sqlite:///{var / f'{name}.db'}"},
        "keys_dir": str(var / "keys"),
        "api_keys_file": str(var / "api-keys.json"),
    }
    # Settings files are read once per path and process: a changed one gets a new folder.
    config = _config(var, config_name or name, **retention)
    if drop is not None:
        directory = yaml.safe_load((config / "authorities.yaml").read_text(encoding="utf-8"))
        directory["authorities"]["336"]["connector"] = {"kind": "file", "directory": str(drop)}
        (config / "authorities.yaml").write_text(yaml.safe_dump(directory), encoding="utf-8")
    settings = load_settings(config, env={}, overrides=overrides)
    for code in ALL:
        ensure_identity(code, settings.directory.get(code).name, settings.keys_dir)
    return settings


@contextmanager
def _logging_into(path: Path) -> Iterator[None]:
    """Everything the gateways log during the test, as the JSON lines `cafgw run` writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream:
        handler = json_handler(stream)
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)


def _delivered(gw, message_ids: tuple[str, ...]) -> bool:  # type: ignore[no-untyped-def]
    return all(
        gw.ledger.find(message_id=m, authority="332")[0].status == Status.DELIVERED
        for m in message_ids
    )


def test_erasure_at_both_ends_leaves_nothing_of_the_child_in_var_and_the_audits_verify(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "var"
    drop = var / "drop-336"
    drop.mkdir(parents=True)
    dudley = _settings(var, "dudley", ("332",), vhost)
    others = _settings(var, "others", ("333", "336"), vhost, drop)
    with (
        _logging_into(var / "log" / "gateways.log"),
        running(others) as receiver,
        running(dudley) as gw,
    ):
        with DUDLEY.open("rb") as stream:
            sent = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
        row1 = next(o for o in sent.outcomes if o.case_ref == "DUD-2026-00417")
        wait_for(lambda: _delivered(gw, row1.message_ids), what="row 1 delivered")
        wait_for(
            lambda: any(p.name.endswith(".xml") for p in drop.iterdir()),
            what="the drop file for 336",
        )
        assert set(found_in(var, SIOBHAN)) == set(SIOBHAN)  # the grep can find them
        report = erasure.erase_child(
            gw,
            "332",
            UPN,
            ground=ErasureGround.CONSENT_WITHDRAWN,
            reference="DPO/2026/201",
            actor="Dudley DPO",
        )
        assert report.state["erasure_notices"] == 2

        def receipted() -> bool:
            with gw.ledger.transaction() as conn:
                got = outcomes.outcomes_of(conn, "332")
            return len(got) == 2 and all(o.outcome == "DELIVERED" and o.action for o in got)

        # Each recipient's gateway erases its copies on receiving the request, and says so.
        wait_for(receipted, what="both erasure notices receipted")
        with gw.ledger.transaction() as conn:
            assert {o.action for o in outcomes.outcomes_of(conn, "332")} == {"ERASED"}
        erased = [
            r
            for r in receiver.ledger.find(direction=Direction.INBOUND, limit=500)
            if r.sender == "332" and Status.ERASED in [h.status for h in r.history]
        ]
        assert {r.authority for r in erased} == {"333", "336"}
        # What is left in the drop (the erasure notice itself) names no one.
        assert found_in(drop, SIOBHAN) == {}
    keys = var / "keys"
    for name in ("dudley", "others"):
        # The gateways keep their audit chains keyed under <keys_dir>/audit-chain.key.
        ledger = Ledger.open(f"sqlite:///{var / f'{name}.db'}", audit_key=audit_key.load(keys))
        try:
            assert audit.verify(ledger) == [], name
            withdrawn = ledger.find(status=Status.WITHDRAWN, direction=Direction.INBOUND)
            assert name == "dudley" or withdrawn
        finally:
            ledger.engine.dispose()
    monkeypatch.setenv("CAFGW_DATABASE__URL", f"sqlite:///{var / 'others.db'}")
    monkeypatch.setenv("CAFGW_KEYS_DIR", str(keys))
    done = CliRunner().invoke(app, ["audit", "verify", "--config", str(others.config_dir)])
    assert done.exit_code == 0, done.output
    assert (var / "log" / "gateways.log").stat().st_size > 0
    assert found_in(var, SIOBHAN) == {}
    assert set(found_in(var, JAYDEN)) >= {"Jayden"}  # Dudley's other child is still there


def test_the_retention_job_of_a_running_gateway_erases_what_is_past_its_period(
    tmp_path: Path, vhost: str
) -> None:
    var = tmp_path / "var"
    dudley = _settings(var, "dudley", ("332",), vhost)
    others = _settings(var, "others", ("333", "336"), vhost, None)
    with running(others), running(dudley) as gw:
        with DUDLEY.open("rb") as stream:
            sent = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
        row1 = next(o for o in sent.outcomes if o.case_ref == "DUD-2026-00417")
        wait_for(lambda: _delivered(gw, row1.message_ids), what="row 1 delivered")
    # Wolverhampton's gateway again, seven years on, with its retention job every 0.2 s.
    later = _settings(var, "others", ("333", "336"), vhost, None, "later", interval_s=0.2)
    seven_years = datetime.now(UTC) + timedelta(days=7 * 365)
    with running(later, clock=lambda: seven_years) as receiver:

        def erased() -> bool:
            received = receiver.ledger.find(authority="336", direction=Direction.INBOUND)
            return bool(received) and all(
                Status.ERASED in [h.status for h in r.history]
                for r in received
                if r.message_type != "Receipt"
            )

        wait_for(erased, timeout_s=30, what="the retention job erased 336's copies")
        assert audit.verify(receiver.ledger) == []
        runs = [e for e in audit.entries(receiver.ledger) if e.event.action == "RETENTION"]
        assert runs and all(e.event.actor == "retention job" for e in runs)
