"""The command line says what is true: errors name a fix that exists, files it writes can be
signed and verified as they are, tables and help keep every word whole."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ops_helpers import make_gateway, put
from typer.testing import CliRunner

from gateway.cli import app
from gateway.ledger.status import Status
from gateway.services import outbound

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
runner = CliRunner()


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "CAFGW_KEYS_DIR": str(tmp_path / "keys"),
        "CAFGW_API_KEYS_FILE": str(tmp_path / "api-keys.json"),
        "CAFGW_DATABASE__URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        **extra,
    }


def cafgw(tmp_path: Path, *args: str, **extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--config", str(CONFIG)], env=env_for(tmp_path, **extra))


def test_a_second_keys_init_names_the_force_option_that_exists(tmp_path: Path) -> None:
    assert cafgw(tmp_path, "keys", "init", "--authority", "332").exit_code == 0
    again = cafgw(tmp_path, "keys", "init", "--authority", "332")
    assert again.exit_code == 2
    assert "cafgw keys init --authority 332 --force" in again.output
    assert "force=True" not in again.output
    assert cafgw(tmp_path, "keys", "init", "--authority", "332", "--force").exit_code == 0


def test_every_file_convert_writes_can_be_signed_and_then_verifies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for code in ("330", "332", "333", "334", "335", "336"):
        assert cafgw(tmp_path, "keys", "init", "--authority", code).exit_code == 0
    converted = cafgw(
        tmp_path, "convert", "--adapter", "dudley-csv", str(DUDLEY), "--out", str(out)
    )
    assert converted.exit_code == 1  # row 5 of the sample is rejected, on purpose
    files = sorted(out.glob("*.xml"))
    assert any(f.name.endswith(".consent.xml") for f in files)
    for f in files:
        signed = tmp_path / f"signed-{f.name}"
        made = cafgw(tmp_path, "sign", "--authority", "332", str(f), "--out", str(signed))
        assert made.exit_code == 0, made.output
        checked = cafgw(tmp_path, "verify", str(signed))
        assert checked.exit_code == 0, checked.output


def test_sign_refuses_what_verify_would_refuse(tmp_path: Path) -> None:
    assert cafgw(tmp_path, "keys", "init", "--authority", "332").exit_code == 0
    assert cafgw(tmp_path, "keys", "init", "--authority", "333").exit_code == 0
    bare = tmp_path / "bare.xml"
    bare.write_text('<ConsentChange xmlns="urn:caf-exchange:1"/>', encoding="utf-8")
    refused = cafgw(tmp_path, "sign", "--authority", "332", str(bare))
    assert refused.exit_code == 2 and "not Envelope" in refused.output
    out = tmp_path / "out"
    cafgw(tmp_path, "convert", "--adapter", "dudley-csv", str(DUDLEY), "--out", str(out))
    other = cafgw(tmp_path, "sign", "--authority", "333", str(out / "DUD-2026-00417.xml"))
    assert other.exit_code == 2 and "sender is 332, not 333" in other.output


def test_commands_that_act_for_an_authority_say_which_when_several_are_hosted(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path, hosted=("332", "336"))
    with DUDLEY.open("rb") as stream:
        outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
    several = cafgw(tmp_path, "consent", "show", "J332412014017", CAFGW_HOSTED='["332", "336"]')
    assert several.exit_code == 2
    assert "hosts 332, 336: say which one acts with --authority CODE" in several.output
    alone = {"CAFGW_HOSTED": '["332"]'}
    shown = cafgw(tmp_path, "consent", "show", "J332412014017", **alone)
    assert shown.exit_code == 0, shown.output
    assert "consent given" in shown.output
    # A case is found by its reference as well as by its thread id.
    case = cafgw(tmp_path, "cases", "show", "DUD-2026-00417", **alone)
    assert case.exit_code == 0, case.output
    assert "DUD-2026-00417" in case.output and "governed by 332" in case.output
    assert cafgw(tmp_path, "issues-log", **alone).exit_code == 0


def test_help_shows_flags_as_flags_and_never_cuts_a_word(tmp_path: Path) -> None:
    result = runner.invoke(app, ["messages", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    assert "--json" in result.output
    assert "DELIVERED|ACKNOWLEDGED" in result.output  # the choices of --status stay whole


def test_listed_reasons_and_types_are_shown_whole(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332",))
    reason = (
        "caf.csv:4:DOB: no such day (expected a real date as dd/mm/yyyy) and the "
        "CROSS_BORDER_CASE_IDENTIFIED notice was not sent " + uuid.uuid4().hex
    )
    put(gw, "332", "332", Status.ACCEPTED, Status.REJECTED, reason=reason)
    listed = cafgw(tmp_path, "messages", CAFGW_HOSTED='["332"]')
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.output
    words = set(listed.output.split())
    assert {w for w in reason.split() if len(w) > 3} <= words
