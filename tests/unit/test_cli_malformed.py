"""Malformed files on the command line: one clear error line, a non-zero exit, no traceback.

Also ``cafgw convert`` for every adapter, including a YAML-only one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
COVENTRY = ROOT / "docs" / "examples" / "coventry-331"
SAMPLES = {
    "dudley-csv": DATA / "dudley-332" / "caf-register-2026-09.csv",
    "wolverhampton-json": DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json",
    "sandwell-xml": DATA / "sandwell-333" / "fwi-forms-20261005.xml",
    "coventry-csv": COVENTRY / "caf-cases-2026-10.csv",
}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's config, with the Coventry example mapping added by an administrator."""
    folder = tmp_path_factory.mktemp("project") / "config"
    shutil.copytree(ROOT / "config", folder)
    shutil.copy(COVENTRY / "coventry-csv.yaml", folder / "adapters")
    return folder


def convert(config: Path, adapter: str, file: Path, out: Path) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["convert", str(file), "--adapter", adapter, "--out", str(out), "--config", str(config)],
    )
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def _malformed(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("adapter", "make", "says"),
    [
        (
            "wolverhampton-json",
            lambda: SAMPLES["wolverhampton-json"].read_bytes()[:700],
            "line",
        ),
        (
            "sandwell-xml",
            lambda: SAMPLES["sandwell-xml"].read_bytes().replace(b"</Form>", b"</Frm>", 1),
            "not well-formed XML",
        ),
        (
            "dudley-csv",
            lambda: SAMPLES["dudley-csv"].read_bytes().decode("cp1252").encode("utf-8"),
            "UTF-8, but the file must be cp1252",
        ),
        (
            "dudley-csv",
            lambda: SAMPLES["dudley-csv"].read_bytes().replace(b"GENDER,", b"", 1),
            "GENDER missing from the header",
        ),
        (
            "coventry-csv",
            lambda: SAMPLES["coventry-csv"].read_bytes().replace(b"SEX,", b"", 1),
            "SEX missing from the header",
        ),
        (
            "coventry-csv",
            lambda: SAMPLES["coventry-csv"].read_text(encoding="utf-8").encode("utf-16"),
            "utf-8",
        ),
    ],
    ids=[
        "truncated-json",
        "invalid-xml",
        "wrong-encoding",
        "missing-column",
        "generic-missing-column",
        "generic-utf16",
    ],
)
def test_a_malformed_file_is_one_clear_error_and_a_non_zero_exit(
    config: Path, tmp_path: Path, adapter: str, make: object, says: str
) -> None:
    assert callable(make)
    file = _malformed(tmp_path, "export.bin", make())
    code, _, err = convert(config, adapter, file, tmp_path / "out")
    assert code == 2
    assert err.startswith("error: export.bin: ")
    assert says in " ".join(err.split())  # rich wraps long lines at the terminal width
    assert err.count("error:") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("adapter", sorted(SAMPLES))
def test_convert_works_for_every_adapter(config: Path, tmp_path: Path, adapter: str) -> None:
    out = tmp_path / "out"
    code, stdout, err = convert(config, adapter, SAMPLES[adapter], out)
    written = sorted(p.name for p in out.glob("*.xml") if not p.name.endswith(".consent.xml"))
    assert written, stdout + err
    assert f"{len(written)} converted" in stdout
    # the Dudley and Coventry samples each hold one deliberately bad record
    assert code == (1 if adapter in ("dudley-csv", "coventry-csv") else 0)
    if code:
        problems = " ".join(err.split())
        assert problems.startswith(f"{SAMPLES[adapter].name}:")
        assert "Traceback" not in err


def test_adapters_list_shows_built_in_and_yaml_adapters(config: Path) -> None:
    result = CliRunner().invoke(app, ["adapters", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    for name in ("coventry-csv", "dudley-csv", "sandwell-xml", "wolverhampton-json"):
        assert name in result.stdout


def test_adapters_validate_accepts_a_good_mapping(config: Path) -> None:
    result = CliRunner().invoke(
        app, ["adapters", "validate", str(config / "adapters" / "coventry-csv.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "valid — adapter coventry-csv version 1 (csv" in " ".join(result.stdout.split())


def test_adapters_validate_refuses_a_bad_mapping_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "coventry-csv.yaml"
    text = (COVENTRY / "coventry-csv.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("STATUS: Assessment.status", "STATUS: Assessment.state"))
    result = CliRunner().invoke(app, ["adapters", "validate", str(bad)])
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "fields.mapped.STATUS: 'Assessment.state' is not a canonical field" in said
    assert "Traceback" not in result.stderr
