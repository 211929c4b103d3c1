"""The family-facing notice is written in the family's language from gettext catalogues
(English and Polish shipped); without a catalogue it stays English and flags the interpreter."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from gateway import catalogues
from gateway.policy.notifications import FAMILY_NOTICE_TEXT, family_notice
from gateway.settings import Authority, Contact

ROOT = Path(__file__).resolve().parents[2]
WALSALL = Authority(
    code="335",
    name="Walsall Council",
    coordinator=Contact(name="Walsall CAF Co-ordinator"),
    line_manager=Contact(name="Walsall Early Help Service Manager"),
)


def _details(language: str | None, interpreter: bool = False) -> tuple[str, dict[str, str]]:
    notice = family_notice("EHM-77120", WALSALL, language, interpreter)
    return notice.summary, {d.name: d.value for d in notice.details}


def test_the_family_notice_is_in_polish_for_a_family_that_speaks_polish() -> None:
    summary, details = _details("Polish")
    assert summary.startswith("Specjalista prowadzący Państwa sprawę")
    assert "Walsall Council" in summary and "Your lead professional" not in summary
    assert details["notice_language"] == "pl" and details["language"] == "Polish"
    assert details["summary_en"].startswith("Your lead professional now works in Walsall")
    assert details["interpreter_needed"] == "false"  # a translated notice needs none


@pytest.mark.parametrize("recorded", ["Polish", "polish", "polski", "pl", "pl-PL", " Polish "])
def test_the_recorded_language_is_read_as_its_english_name_its_own_name_or_its_code(
    recorded: str,
) -> None:
    assert catalogues.catalogue_for(recorded) == "pl"


def test_an_english_speaking_family_and_one_with_no_language_recorded_get_english() -> None:
    for language in ("English", None):
        summary, details = _details(language)
        assert summary.startswith("Your lead professional now works in Walsall Council")
        assert details["notice_language"] == "en" and "summary_en" not in details


@pytest.mark.parametrize("language", ["Tigrinya", "Urdu", "Dari", "a language nobody knows"])
def test_a_language_without_a_catalogue_stays_english_and_flags_the_interpreter(
    language: str,
) -> None:
    summary, details = _details(language, interpreter=False)
    assert summary.startswith("Your lead professional now works in Walsall Council")
    assert details["interpreter_needed"] == "true"
    assert details["translation"].startswith(f"none: no catalogue for {language}")
    assert "notice_language" not in details


def test_english_and_polish_catalogues_are_shipped() -> None:
    assert {"en", "pl"} <= set(catalogues.shipped())


@pytest.mark.parametrize("po", sorted((ROOT / "gateway" / "locale").glob("*/LC_MESSAGES/*.po")))
def test_each_shipped_catalogue_is_compiled_from_its_po_file(po: Path) -> None:
    with po.open("rb") as f:
        catalogue = read_po(f, locale=po.parent.parent.name, domain=po.stem)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    assert po.with_suffix(".mo").read_bytes() == compiled.getvalue(), (
        f"{po.with_suffix('.mo')} is out of date: run make catalogues"
    )


def test_every_family_text_in_the_code_is_translated_in_every_shipped_catalogue() -> None:
    source = ROOT / "gateway" / "policy" / "notifications.py"
    found = extract_from_file("python", str(source), keywords={"family_text": None})
    texts = {m[1] for m in found}
    assert FAMILY_NOTICE_TEXT in texts
    for code in catalogues.shipped():
        po = ROOT / "gateway" / "locale" / code / "LC_MESSAGES" / "family.po"
        with po.open("rb") as f:
            catalogue = read_po(f, locale=code)
        for text in texts:
            message = catalogue.get(text)
            assert message is not None and message.string and not message.fuzzy, (
                f"{po}: no translation of {text[:40]!r}... (make catalogues-extract, translate)"
            )
