"""A draft declarative mapping from a sample export: its fields, guessed targets, TODOs.

``cafgw adapters new NAME --from-sample FILE`` reads a CSV header (and rows)
or a JSON export's record keys, guesses the canonical target of each local
field by the similarity of their names (with the spellings exports use:
``DOB``, ``SURNAME``, ``CAF_REF``...), and writes every field it cannot place
as ``TODO``. A TODO is not a target, so the draft is refused by ``cafgw
adapters validate`` until an administrator has decided each one: nothing
is guessed silently into force.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from enum import StrEnum

from adapters.generic.fields import (
    CODE_LISTS,
    ELEMENT_PARTS,
    ELEMENT_PREFIX,
    GROUPS,
    REQUIRED,
    SCOPE_FLAG_PREFIX,
    SINGLE,
    Kind,
    Slot,
    parse_target,
)
from gateway.errors import MalformedInputError
from gateway.model import Element

TODO = "TODO"
MAX_SAMPLE_RECORDS = 500
THRESHOLD = 0.8

# How exports commonly spell a target (normalised: lower case letters and digits only).
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "Assessment.case_ref": ("cafref", "caseref", "caseno", "casenumber", "episodeid", "caseid"),
    "Assessment.started_on": ("datestarted", "startdate", "opened", "startedon"),
    "Assessment.completed_on": ("datecompleted", "completeddate", "completedon"),
    "Assessment.outcome": ("conclusion", "outcome"),
    "Assessment.child_views": ("childviews", "voiceofchild"),
    "Assessment.initiator.name": ("initiatedby", "initiator", "workername", "practitionername"),
    "Assessment.initiator.role": ("initiatorrole", "workerrole", "practitionerrole"),
    "Assessment.initiator.organisation": (
        "initiatororg",
        "workerteam",
        "practitionerorg",
        "practitionerorganisation",
    ),
    "Assessment.initiator.la_code": ("initiatorla", "workerla", "practitionerlacode"),
    "Assessment.initiator.email": ("initiatoremail", "workeremail", "practitioneremail"),
    "Child.given_name": ("forename", "firstname", "given", "namesgiven", "givenname"),
    "Child.family_name": ("surname", "lastname", "family", "namesfamily", "familyname"),
    "Child.preferred_name": ("preferred", "namespreferred", "knownas"),
    "Child.date_of_birth": ("dob", "birthdate", "dateofbirth", "born"),
    "Child.gender": ("gender", "sex"),
    "Child.ethnicity": ("ethnicity", "ethniccode", "ethnicorigin"),
    "Child.language": ("language", "firstlanguage", "homelanguage"),
    "Child.interpreter_needed": ("interpreter", "interpreterneeded"),
    "Child.identifiers.UPN": ("upn", "pupilnumber"),
    "Child.identifiers.NHS": ("nhs", "nhsno", "nhsnumber"),
    "Child.address.postcode": ("postcode", "addresspostcode"),
    "Child.address.la_code": ("homela", "addresslacode", "residencela", "la"),
    "Child.address.line1": ("addressline1", "address1", "street"),
    "Child.address.town": ("addresstown", "town", "city"),
    "Child.school.name": ("school", "schoolname"),
    "Child.school.la_code": ("schoolla", "schoollacode"),
    "ConsentRecord.given": ("consentgiven", "consent"),
    "ConsentRecord.given_by": ("consentby", "consentfrom", "consentgivenbyname", "givenbyname"),
    "ConsentRecord.role": ("consentbyrole", "consentrole", "consentgivenbyrole", "givenbyrole"),
    "ConsentRecord.recorded_at": ("consentdate", "consentrecordedat", "recordedat"),
    "ConsentRecord.scopes": ("consentscopes", "scopes"),
    "ConsentRecord.named_las": ("sharewith", "sharelas", "sharingwith", "consentsharingwith"),
    f"{SCOPE_FLAG_PREFIX}SHARE_CROSS_BORDER": ("sharexborder", "sharecrossborder", "xborder"),
    "Assessment.actions.description": ("action", "actiontext", "plandescription"),
    "Assessment.actions.owner": ("actionowner", "actionby", "planowner"),
    "Assessment.actions.owner_la": ("ownerlacode", "actionownerla"),
    "Assessment.actions.due": ("actiondue", "plandue"),
    "Assessment.actions.status": ("actionstatus", "planstatus"),
    "Assessment.lead_professionals.name": ("leadprof", "leadworker", "leadprofessional"),
    "Assessment.lead_professionals.organisation": ("leadproforg", "leadworkerteam"),
    "Assessment.lead_professionals.la_code": ("leadprofla", "leadworkerla"),
    "Assessment.tac_meetings.held_on": ("tacdate", "tacmeeting", "tacheldon"),
    "Assessment.carers.name": ("carername", "carersname", "parentname"),
    "Assessment.carers.relationship": ("carerrelation", "carersrelationship"),
    "Assessment.flags.code": ("flag", "flagcode"),
    "Assessment.flags.text": ("flagnote", "flagtext"),
}


@dataclass(frozen=True)
class LocalField:
    """One local field of the sample: its name in the mapping and whether it repeats."""

    name: str  # a CSV column (``ACTION_{n}_DUE``) or a JSON path (``episodes[].child.sex``)
    repeated: bool
    values: tuple[str, ...] = ()


@dataclass
class Draft:
    """The draft mapping's text and what was guessed."""

    text: str
    guessed: dict[str, str] = field(default_factory=dict)
    todo: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _aliases(target: str) -> list[str]:
    parts = target.split(".")
    tail = parts[-1] if parts[0] != "Assessment" or len(parts) == 2 else "".join(parts[-2:])
    found = [_norm(tail), _norm("".join(parts[1:])), *SYNONYMS.get(target, ())]
    if parts[0] == "Assessment" and len(parts) == 3 and parts[1].endswith("s"):
        found.append(_norm(parts[1][:-1] + parts[2]))  # actions.due -> actiondue
    return found


def _candidates(local: LocalField, records: str | None) -> list[str]:
    """The normalised spellings of a local field to compare with the aliases."""
    name = local.name.replace("{n}", "")
    if records is None:
        return [_norm(name)]
    steps = [s.removesuffix("[]") for s in name.removeprefix(f"{records}[].").split(".")]
    return [_norm("".join(steps[-k:])) for k in range(1, min(3, len(steps)) + 1)]


def _score(local: LocalField, target: str, records: str | None, in_list: bool) -> float:
    best = 0.0
    aliases = _aliases(target)
    if in_list:  # the list already says which group: the last step names the part
        aliases.append(_norm(target.rpartition(".")[2]))
    for mine in _candidates(local, records):
        for alias in aliases:
            if mine and alias:
                best = max(best, SequenceMatcher(None, mine, alias).ratio())
    return best


# What a JSON export calls the list holding a repeated group's members.
GROUP_LISTS: Mapping[str, tuple[str, ...]] = {
    "Assessment.actions": ("plan", "actions", "planactions", "plan"),
    "Assessment.tac_meetings": ("tacmeetings", "tac", "meetings"),
    "Assessment.lead_professionals": ("leadprofessionals", "leads", "leadworkers"),
    "Assessment.carers": ("carers", "parents", "family"),
    "Assessment.events": ("events", "caseevents", "history"),
    "Assessment.flags": ("flags",),
    "ConsentRecord.withdrawn": ("withdrawn", "withdrawals"),
}


def _list_fits(local: LocalField, group: str, records: str | None) -> bool:
    """A JSON group field sits in a list named like the group (``plan[]`` holds actions)."""
    if records is None:
        return True
    inner = local.name.removeprefix(f"{records}[].")
    if "[]" not in inner:
        return False
    step = _norm(inner[: inner.rindex("[]")].rpartition(".")[2])
    return step in GROUP_LISTS.get(group, ())


def _element(local: LocalField) -> str | None:
    """``...dimensions.Health.rating`` -> ``Assessment.elements.Health.rating``."""
    steps = [_norm(s) for s in re.split(r"[.\[\]]+", local.name) if s]
    if len(steps) < 2 or steps[-1] not in ELEMENT_PARTS:
        return None
    for element in Element:
        if _norm(element.value) == steps[-2]:
            return f"{ELEMENT_PREFIX}{element.value}.{steps[-1]}"
    return None


def _targets() -> list[str]:
    names = [t for t in SINGLE]
    names += [f"{g}.{p}" for g, parts in GROUPS.items() for p in parts]
    names.append(f"{SCOPE_FLAG_PREFIX}SHARE_CROSS_BORDER")
    return names


def guess(fields: Sequence[LocalField], records: str | None = None) -> dict[str, str]:
    """Local field -> target, for those whose names are close enough; each target once."""
    scored = []
    for local in fields:
        element = _element(local)
        if element is not None and not local.repeated:
            scored.append((1.0, local.name, element))
            continue
        for target in _targets():
            parsed = parse_target(target)
            group = parsed.group if parsed is not None else None
            in_group = group is not None
            if local.repeated and not in_group:
                continue
            fits = False
            if group is not None and (local.repeated or records is not None):
                if not _list_fits(local, group, records):
                    continue
                fits = records is not None
            score = _score(local, target, records, fits) - (0.01 if in_group else 0.0)
            if score >= THRESHOLD:
                scored.append((score, local.name, target))
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for _, name, target in sorted(scored, key=lambda s: -s[0]):
        if name not in chosen and target not in taken:
            chosen[name] = target
            taken.add(target)
    return chosen


# --- reading samples ------------------------------------------------------------

_NUMBER = re.compile(r"\d+")


def csv_fields(data: bytes) -> tuple[list[LocalField], str]:
    """The columns of a CSV sample (numbered ones folded into ``{n}``) and its encoding."""
    encoding = "utf-8"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        encoding, text = "cp1252", data.decode("cp1252", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise MalformedInputError("the sample has no header row")
    rows = [r for _, r in zip(range(MAX_SAMPLE_RECORDS), reader, strict=False)]
    patterns: dict[str, list[int]] = {}
    for i, column in enumerate(header):
        patterns.setdefault(_NUMBER.sub("{n}", column, count=1), []).append(i)
    out = []
    for pattern, columns in patterns.items():
        repeated = len(columns) > 1 and "{n}" in pattern
        names = [pattern] if repeated else [header[i] for i in columns]
        for name in names:
            at = columns if repeated else [header.index(name)]
            values = {r[i].strip() for r in rows for i in at if i < len(r) and r[i].strip()}
            out.append(LocalField(name, repeated, tuple(sorted(values))))
    return out, encoding


def _walk(value: object, path: str, in_list: bool) -> Iterator[tuple[str, bool, object]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _walk(inner, f"{path}.{key}", in_list)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for item in value:
            yield from _walk(item, f"{path}[]", True)
    else:
        yield path, in_list, value


def json_fields(data: bytes) -> tuple[list[LocalField], str, list[str]]:
    """The record paths of a JSON sample, the key of its record array and other top-level keys."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedInputError(f"the sample is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedInputError("the sample must be one JSON object holding a record array")
    arrays = [k for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    if not arrays:
        raise MalformedInputError("the sample has no top-level array of records")
    records = arrays[0]
    found: dict[str, tuple[bool, set[str]]] = {}
    for record in doc[records][:MAX_SAMPLE_RECORDS]:
        for path, repeated, value in _walk(record, f"{records}[]", False):
            seen = found.setdefault(path, (repeated, set()))[1]
            items = value if isinstance(value, list) else [value]
            seen.update(str(v) for v in items if isinstance(v, str | int | float) and v != "")
    # A list that is empty in one record and holds objects in another is its objects.
    fields = [
        LocalField(p, r, tuple(sorted(v)))
        for p, (r, v) in found.items()
        if not any(other.startswith(f"{p}[].") for other in found)
    ]
    return fields, records, [k for k in doc if k != records]


# --- writing the draft ----------------------------------------------------------


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _date_format(values: Sequence[str]) -> str | None:
    shapes = (
        (r"\d{2}/\d{2}/\d{4}", "%d/%m/%Y"),
        (r"\d{2}\.\d{2}\.\d{4}", "%d.%m.%Y"),
        (r"\d{2}-\d{2}-\d{4}", "%d-%m-%Y"),
        (r"\d{2}-[A-Za-z]{3}-\d{4}", "%d-%b-%Y"),
        (r"\d{4}-\d{2}-\d{2}(T.*)?", "iso"),
    )
    for value in values:
        for shape, fmt in shapes:
            if re.fullmatch(shape, value):
                return fmt
    return None


def _canonical_guess(local: str, canonical: Sequence[str]) -> str:
    mine = _norm(local)
    exact = [c for c in canonical if _norm(c) == mine]
    if exact:
        return exact[0]
    starts = [c for c in canonical if mine and _norm(c).startswith(mine)]
    return starts[0] if len(starts) == 1 else TODO


def _code_values(name: str) -> list[str]:
    kind = CODE_LISTS[name]
    return [str(v) for v in kind] if issubclass(kind, StrEnum) else []


def draft(name: str, authority: str, sample: bytes, source: str, kind: str | None = None) -> Draft:
    """The draft mapping of ``sample`` (CSV unless it is JSON or named ``*.json``)."""
    looks_json = sample.lstrip()[:1] in (b"{", b"[")
    kind = kind or ("json" if source.lower().endswith(".json") or looks_json else "csv")
    others: list[str] = []
    records: str | None = None
    if kind == "json":
        fields, records, others = json_fields(sample)
        encoding = "utf-8"
    else:
        fields, encoding = csv_fields(sample)
    guessed = guess(fields, records)
    by_name = {f.name: f for f in fields}
    slots: dict[str, Slot] = {}
    for local, target in guessed.items():
        parsed = parse_target(target)
        if parsed is not None:
            slots[local] = parsed.slot
    todo = [f.name for f in fields if f.name not in guessed]
    missing = [t for t in REQUIRED if t not in guessed.values()]
    consent = any(t.startswith("ConsentRecord.") for t in guessed.values())
    if consent and "ConsentRecord.given" not in guessed.values():
        missing.append("ConsentRecord.given")

    separator = None
    if kind == "csv":
        listed = [
            v
            for n, sl in slots.items()
            if sl.kind in (Kind.CODES, Kind.LAS)
            for v in by_name[n].values
        ]
        separator = next((c for c in (";", "|") if any(c in v for v in listed)), None)
        if separator is not None:  # a list in one cell: its items are the codes
            for n, sl in slots.items():
                if sl.kind in (Kind.CODES, Kind.LAS):
                    items = {i.strip() for v in by_name[n].values for i in v.split(separator)}
                    by_name[n] = LocalField(n, by_name[n].repeated, tuple(sorted(items - {""})))

    def values_of(kinds: set[Kind]) -> list[str]:
        return [v for n, s in slots.items() if s.kind in kinds for v in by_name[n].values]

    lines = [
        f"# Draft mapping for {name}, from the sample {source}, by cafgw adapters new.",
        "# Guessed targets are marked '# guessed'; check each. Every TODO must be decided",
        "# (a canonical target, or move the field to fields.ignored with the reason) before",
        "# cafgw adapters validate accepts this file. Targets: docs/adapters.md.",
    ]
    if missing:
        lines.append(f"# Not yet mapped but required: {', '.join(missing)}")
    lines += [
        f"kind: {kind}",
        f"name: {_q(name)}",
        'version: "0.1-draft"',
        f"authority: {_q(authority)}",
        f"encoding: {encoding}",
        f"source_system: {_q(source)}",
    ]
    if records is not None:
        lines.append(f"records: {_q(records)}")
    if separator is not None:
        lines.append(f"list_separator: {_q(separator)}")
    date_fmt = _date_format(values_of({Kind.DATE}))
    if date_fmt is not None:
        lines.append(f"date_formats: [{_q(date_fmt)}]")
    flags = set(values_of({Kind.FLAG}))
    for yes, no in (("Y", "N"), ("Yes", "No"), ("YES", "NO"), ("1", "0"), ("true", "false")):
        if flags and flags <= {yes, no}:
            lines += [f"true_tokens: [{_q(yes)}]", f"false_tokens: [{_q(no)}]"]
            break
    lines += ["fields:", "  mapped:"]
    for f in fields:
        if f.name in guessed:
            lines.append(f"    {_q(f.name)}: {_q(guessed[f.name])}  # guessed")
        else:
            seen = ", ".join(f.values[:3])
            hint = f"  # sample values: {seen}" if seen else ""
            lines.append(f"    {_q(f.name)}: {TODO}{hint}")
    lines += ["  ignored:"]
    if kind == "json":
        for key in others:
            lines.append(
                f"    {_q(key)}: {_q(TODO + ': say why this part of the export is not carried')}"
            )
    if lines[-1] == "  ignored:":
        lines[-1] = "  ignored: {}"
    lists = sorted({s.codes for s in slots.values() if s.codes is not None})
    if lists:
        lines.append("codes:")
    for code_list in lists:
        canonical = _code_values(code_list)
        seen_values = sorted(
            {v for n, s in slots.items() if s.codes == code_list for v in by_name[n].values}
        )
        lines += [f"  {code_list}:", "    decode:"]
        for value in seen_values or [TODO]:
            same = value if CODE_LISTS[code_list] is str and value != TODO else None
            lines.append(f"      {_q(value)}: {_q(same or _canonical_guess(value, canonical))}")
        if canonical:
            lines[-len(seen_values or [TODO]) - 1] += f"  # canonical: {', '.join(canonical)}"
    return Draft("\n".join(lines) + "\n", guessed, todo, missing)
