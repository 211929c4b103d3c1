"""Message catalogues for what a family reads, in the family's language (gettext).

A family-facing notice is written from the catalogue of the family's
language (``gateway/locale/<lang>/LC_MESSAGES/family.po``, compiled to
``.mo`` by ``make catalogues`` and shipped). The language a case records is
free text ("Polish", "polski", "pl"): it is read as a language name in
English (or, for a shipped language, in its own language), or as a code,
with Babel's CLDR data. A
language without a catalogue is ``None``: the notice stays English and the
interpreter is flagged.
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

from babel import Locale, UnknownLocaleError

DOMAIN = "family"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"


def shipped() -> tuple[str, ...]:
    """The languages with a compiled catalogue, e.g. ``("en", "pl")``."""
    return tuple(
        sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    )


@functools.cache
def _names() -> dict[str, str]:
    """Lower-cased language name -> code: every English name, and each shipped
    language's own name ("polski"); other languages' own names would not find a
    catalogue anyway, and reading every locale's data takes seconds."""
    found: dict[str, str] = {}
    for code in shipped():
        own = Locale(code).get_language_name(code)
        if own:
            found[own.casefold()] = code
    for code, name in Locale(SOURCE_LANGUAGE).languages.items():
        if "_" not in code:
            found.setdefault(name.casefold(), code)
    return found


def language_code(recorded: str) -> str | None:
    """The language code a recorded language means ("Polish", "polski", "pl" -> ``pl``)."""
    text = recorded.strip()
    if not text:
        return None
    by_name = _names().get(text.casefold())
    if by_name is not None:
        return by_name
    try:
        return Locale.parse(text.replace("-", "_")).language
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def catalogue_for(recorded: str | None) -> str | None:
    """The shipped catalogue for a recorded language, or ``None`` if there is none.

    No recorded language is English (the notice's source language).
    """
    if recorded is None or not recorded.strip():
        return SOURCE_LANGUAGE
    code = language_code(recorded)
    return code if code in shipped() else None


@functools.cache
def translations(code: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``code`` (a shipped language)."""
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[code])
