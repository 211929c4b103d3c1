"""Every ``cafgw`` command shown in README.md and docs/*.md, as runnable command lines.

Commands come from fenced code blocks (one per line, ``;`` separating several)
and from inline code spans. How a shown command becomes runnable:

- ``.venv/bin/cafgw`` and a leading ``$`` prompt are dropped; ``# comments`` too;
- ``a | b | c`` after a command group lists its subcommands: each is run;
- ``[...]`` marks optional parts: run once without them and once with all of
  them (``json|html|pdf`` inside takes the first);
- UPPERCASE placeholders (``MESSAGE_ID``, ``REF``, ``FILE.xml``...) and
  ``<name>`` are filled in by the test from the state it made;
- a command named in prose without options or placeholders (``cafgw
  consent``, ``cafgw recall``) is run with ``--help``: it must exist; a span
  with ``...`` is an elided sketch and is not run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GROUPS = frozenset(
    {
        "keys",
        "api-keys",
        "audit",
        "ledger",
        "disputes",
        "broker",
        "adapters",
        "authorities",
        "dead-letters",
        "consent",
        "cases",
        "existence",
        "agreements",
        "retention",
        "children",
    }
)
# Shown but not run here, and why.
NOT_RUN = {
    "docker": "no Docker engine on the build machines (docs/operations.md, Docker)",
    "cafgw broker setup": (
        "creates users on the machine's shared broker (rabbitmqctl, seconds a call); "
        "tests/integration/test_broker_accounts.py runs the same set-up with user names of its own"
    ),
}
# Documents whose commands another test runs, as a whole and in their own setting.
RUN_ELSEWHERE = {
    "docs/deployment.md": (
        "tests/integration/test_deployment_recipe.py runs them, for two gateways of their own"
    ),
}
_FENCE = re.compile(r"^```")
_SPAN = re.compile(r"`((?:\.venv/bin/)?cafgw [^`]+)`")


@dataclass(frozen=True)
class Shown:
    """A command as a document shows it, and where."""

    text: str
    where: str  # file:line
    fenced: bool  # in a code block (an example to run), else named in prose


def shown_commands() -> list[Shown]:
    found: list[Shown] = []
    for path in DOCS:
        inside = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if _FENCE.match(line.strip()):
                inside = not inside
                continue
            if inside:
                text = line.strip().removeprefix("$ ").strip()
                if re.match(r"(\.venv/bin/)?cafgw ", text) or text.startswith("docker "):
                    found.extend(Shown(part.strip(), where, True) for part in text.split(" ; "))
                continue
            found.extend(Shown(m.group(1), where, False) for m in _SPAN.finditer(line))
    return found


def _strip(text: str) -> str:
    text = re.sub(r"\s+#\s.*$", "", text).strip()
    return re.sub(r"^(\.venv/bin/)?cafgw", "cafgw", text)


def _alternatives(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r" \| ", text)]
    if len(parts) == 1:
        return parts
    words = parts[0].split()
    if len(words) < 2 or words[1] not in GROUPS:
        raise ValueError(f"alternatives after a command that is not a group: {text!r}")
    return [parts[0]] + [f"cafgw {words[1]} {p}" for p in parts[1:]]


def _optionals(text: str) -> list[str]:
    if "[" not in text:
        return [text]
    without = re.sub(r"\s*\[[^\]]*\]", "", text)
    with_all = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1), text)
    with_all = re.sub(r"([\w.-]+)(?:\|[\w.-]+)+", r"\1", with_all)
    return [without, with_all]


def runnable(shown: Shown, fenced: bool) -> list[str] | str:
    """The command lines to run for ``shown``, or why it is not run."""
    text = _strip(shown.text)
    elsewhere = RUN_ELSEWHERE.get(shown.where.rsplit(":", 1)[0])
    if elsewhere is not None:
        return elsewhere
    for prefix, why in NOT_RUN.items():
        if text.startswith(prefix) and (fenced or prefix == "docker"):
            return why
    if "..." in text:
        return "an elided sketch (...)"
    words = text.split()
    named_only = not any(
        w.lstrip("[").startswith("-") or re.search(r"[A-Z]{2}|<", w) for w in words
    )
    if not fenced and named_only:
        # A command named in prose (`cafgw recall`, `cafgw disputes list`): it exists.
        return [f"{alt} --help" for alt in _alternatives(re.sub(r"(\w)\|(\w)", r"\1 | \2", text))]
    lines: list[str] = []
    for alt in _alternatives(text):
        if re.search(r"\S\|\S", re.sub(r"\[[^\]]*\]", "", alt)):
            raise ValueError(
                f"{shown.where}: {shown.text!r}: a|b outside [...] is a synopsis; "
                "show runnable commands"
            )
        lines.extend(_optionals(alt))
    return list(dict.fromkeys(lines))


def fill(line: str, values: dict[str, str]) -> list[str]:
    """``line`` as argv with each known placeholder replaced (whole words only)."""
    argv = []
    for word in shlex.split(line):
        filled = word
        for token, value in values.items():
            filled = re.sub(rf"(?<![\w<]){re.escape(token)}(?![\w>])", value, filled)
        argv.append(filled)
    return argv


def unique(items: list[list[str]]) -> list[list[str]]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for argv in items:
        key = tuple(argv)
        if key not in seen:
            seen.add(key)
            out.append(argv)
    return out
