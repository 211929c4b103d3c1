"""Local values of one record -> a canonical ``Assessment`` (generic mappings).

The CSV and JSON readers hand over each mapped value with the rule that
maps it, the group member number and the field name to report; this
module checks every value by the kind of its target, collects every
problem of the record, and builds the model objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from adapters.base import Result
from adapters.checks import RecordCheck
from adapters.generic.fields import GROUP_REQUIRED, REQUIRED, Kind
from adapters.generic.mapping import ISO, FieldRule, GenericMapping
from adapters.results import to_result
from gateway.identifiers import DateFormatError, date_format_label, la_code_problem, parse_date
from gateway.model import (
    Address,
    Assessment,
    Carer,
    CaseEvent,
    Child,
    ConsentRecord,
    ConsentScope,
    Element,
    ElementAssessment,
    Flag,
    Gender,
    Identifier,
    LeadProfessionalPeriod,
    PlanAction,
    Practitioner,
    School,
    TacMeeting,
    Withdrawal,
)


@dataclass(frozen=True)
class Cell:
    """One mapped local value: its rule, group member number and reported field name."""

    rule: FieldRule
    n: int | None
    field: str
    raw: object


class ValueReader:
    """Checks local values by the kind of their target, for one mapping."""

    def __init__(self, mapping: GenericMapping) -> None:
        self.m = mapping

    def value(self, check: RecordCheck, cell: Cell) -> Any:
        """The checked canonical value of ``cell``, or ``None`` (empty or invalid)."""
        raw, field, slot = cell.raw, cell.field, cell.rule.target.slot
        if isinstance(raw, str):
            raw = raw.strip()
        if raw is None or raw in ("", []):
            return None
        kind = slot.kind
        if kind in (Kind.CODES, Kind.LAS):
            items = raw if isinstance(raw, list) else str(raw).split(self.m.list_separator)
            out = []
            for item in items:
                text = self._text(check, item, field)
                if text and text not in out:
                    out.append(text)
            if kind is Kind.LAS:
                found = (self._la(check, code, field) for code in out)
                return tuple(code for code in found if code)
            codes = self.m.codes[slot.codes or ""]
            return tuple(v for v in (check.code(codes, code, field) for code in out) if v)
        if kind is Kind.FLAG:
            return self._flag(check, raw, field)
        if kind is Kind.RATING:
            return check.rating(raw, field)
        text = self._text(check, raw, field)
        if text is None:
            return None
        if kind is Kind.TEXT:
            return text
        if kind is Kind.CODE:
            return check.code(self.m.codes[slot.codes or ""], text, field)
        if kind is Kind.DATE:
            return self._date(check, text, field)
        if kind is Kind.INSTANT:
            return self._instant(check, text, field)
        if kind is Kind.LA:
            return self._la(check, text, field)
        if kind is Kind.UPN:
            return check.upn(text, field)
        if kind is Kind.NHS:
            return check.nhs(text, field)
        return check.postcode(text, field)

    def _la(self, check: RecordCheck, text: str, field: str) -> str | None:
        """A DfE LA code, written as the code or, with ``codes.la``, as a name."""
        names = self.m.codes.get("la")
        if names is not None and (code := names.decode(text)) is not None:
            return code
        if names is not None and la_code_problem(text) is not None:
            check.add(field, "neither a DfE LA code nor an authority name of codes.la", text)
            return None
        return check.la(text, field)

    def _text(self, check: RecordCheck, raw: object, field: str) -> str | None:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            check.add(field, "must be text", repr(raw)[:60])
            return None
        return str(raw).strip() or None

    def _flag(self, check: RecordCheck, raw: object, field: str) -> bool | None:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw in self.m.true_tokens:
            return True
        if isinstance(raw, str) and raw in self.m.false_tokens:
            return False
        tokens = " or ".join((*self.m.true_tokens, *self.m.false_tokens))
        check.add(field, f"must be {tokens}", str(raw))
        return None

    def _date(self, check: RecordCheck, text: str, field: str) -> date | None:
        for fmt in self.m.date_formats:
            if fmt == ISO:
                try:
                    return datetime.fromisoformat(text).date()
                except ValueError:
                    continue
            try:
                return parse_date(text, fmt)
            except DateFormatError as exc:
                if len(self.m.date_formats) == 1:
                    check.add(field, str(exc), text)
                    return None
        labels = " or ".join(
            "ISO 8601" if f == ISO else date_format_label(f) for f in self.m.date_formats
        )
        check.add(field, f"not a date as {labels}", text)
        return None

    def _instant(self, check: RecordCheck, text: str, field: str) -> datetime | None:
        for fmt in self.m.datetime_formats:
            try:
                parsed = (
                    datetime.fromisoformat(text) if fmt == ISO else datetime.strptime(text, fmt)
                )
            except ValueError:
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=self.m.zone)
            return parsed.astimezone(UTC)
        labels = " or ".join("ISO 8601" if f == ISO else f for f in self.m.datetime_formats)
        check.add(field, f"not a date-time as {labels}", text)
        return None


class RecordBuilder:
    """Builds one canonical record from its cells."""

    def __init__(self, mapping: GenericMapping, known_authorities: frozenset[str]) -> None:
        self.m = mapping
        self.known = known_authorities
        self.values = ValueReader(mapping)
        named = mapping.rule_for("ConsentRecord.named_las")
        self.share_field = named.source if named else "ConsentRecord.named_las"

    def build(self, check: RecordCheck, cells: Iterable[Cell]) -> Result:
        """``Converted`` with every mapped value in place, or ``Rejected`` with every problem."""
        single: dict[str, Any] = {}
        where: dict[str, str] = {}
        idents: dict[str, str] = {}
        elements: dict[Element, dict[str, Any]] = {}
        scope_flags: dict[ConsentScope, bool] = {}
        groups: dict[str, dict[int, dict[str, Any]]] = {}
        group_where: dict[tuple[str, int, str], str] = {}
        for cell in cells:
            t = cell.rule.target
            value = self.values.value(check, cell)
            where[t.text] = cell.field
            if t.group is not None:
                n = cell.n or 1
                group_where[(t.group, n, t.part or "")] = cell.field
                if value is not None:
                    groups.setdefault(t.group, {}).setdefault(n, {})[t.part or ""] = value
            elif value is None:
                continue
            elif t.element is not None:
                elements.setdefault(t.element, {})[t.part or ""] = value
            elif t.scope is not None:
                scope_flags[t.scope] = value
            elif t.scheme is not None:
                idents[t.scheme] = value
            else:
                single[t.text] = value
        for target in REQUIRED:
            field = where.get(target) or self._field(target)
            if target not in single and not _reported(check, field):
                check.add(field, "required value is missing")
        for owner, name in (("Assessment.initiator.", "name"), ("Child.school.", "name")):
            details = [t for t in single if t.startswith(owner)]
            if details and owner + name not in single:
                field = where.get(owner + name) or self._field(owner + name)
                check.add(field, f"{details[0]} is recorded without {owner + name}")
        consent_noted = [t for t in where if t.startswith("ConsentRecord.") and t in single]
        if "ConsentRecord.given" not in single and (consent_noted or scope_flags):
            field = where.get("ConsentRecord.given") or self._field("ConsentRecord.given")
            if not _reported(check, field):
                check.add(field, "consent details are recorded but not whether consent was given")
        members = {g: self._members(check, g, ns, group_where) for g, ns in groups.items()}
        assessment = self._assessment(check, single, idents, elements, scope_flags, members)
        return to_result(check, assessment, self.known, self.share_field)

    def _field(self, target: str) -> str:
        """The local field name of ``target`` (a JSON path within the record)."""
        rule = self.m.rule_for(target)
        if rule is None:
            return target
        prefix = f"{self.m.records}[]." if self.m.records else ""
        return rule.source.removeprefix(prefix)

    def _members(
        self,
        check: RecordCheck,
        group: str,
        numbered: dict[int, dict[str, Any]],
        group_where: dict[tuple[str, int, str], str],
    ) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for n in sorted(numbered):
            parts = numbered[n]
            missing = [k for k in GROUP_REQUIRED[group] if k not in parts]
            for key in missing:
                field = group_where.get((group, n, key), f"{group}.{key}")
                if not _reported(check, field):
                    check.add(field, f"a {group.rpartition('.')[2]} entry needs its {key}")
            if not missing:
                out.append((n, parts))
        return out

    def _assessment(
        self,
        check: RecordCheck,
        s: dict[str, Any],
        idents: dict[str, str],
        elements: dict[Element, dict[str, Any]],
        scope_flags: dict[ConsentScope, bool],
        members: dict[str, list[tuple[int, dict[str, Any]]]],
    ) -> Assessment | None:
        if check.problems:
            return None
        address = {k: s.get(f"Child.address.{k}") for k in ("line1", "town", "postcode", "la_code")}
        school = s.get("Child.school.name")
        child = Child(
            given_name=s["Child.given_name"],
            family_name=s["Child.family_name"],
            date_of_birth=s.get("Child.date_of_birth"),
            gender=s.get("Child.gender", Gender.NOT_KNOWN),
            preferred_name=s.get("Child.preferred_name"),
            identifiers=tuple(Identifier(k, v) for k, v in idents.items()),
            address=Address(**address) if any(address.values()) else None,
            school=School(school, s.get("Child.school.la_code")) if school else None,
            ethnicity=s.get("Child.ethnicity"),
            religion=s.get("Child.religion"),
            language=s.get("Child.language"),
            interpreter_needed=s.get("Child.interpreter_needed"),
            local_person_id=s.get("Child.local_person_id"),
        )
        initiator = None
        if "Assessment.initiator.name" in s:
            details = ("role", "organisation", "la_code", "email")
            initiator = Practitioner(
                s["Assessment.initiator.name"],
                **{k: s.get(f"Assessment.initiator.{k}") for k in details},
            )
        g = members
        return Assessment(
            case_ref=s["Assessment.case_ref"],
            child=child,
            initiator=initiator,
            started_on=s.get("Assessment.started_on"),
            status=s["Assessment.status"],
            carers=tuple(Carer(**p) for _, p in g.get("Assessment.carers", [])),
            completed_on=s.get("Assessment.completed_on"),
            consent=self._consent(s, scope_flags, g.get("ConsentRecord.withdrawn", [])),
            elements=tuple(
                ElementAssessment(e, p.get("rating"), p.get("concern"), p.get("notes"))
                for e, p in elements.items()
            ),
            strengths=s.get("Assessment.strengths"),
            needs=s.get("Assessment.needs"),
            outcome=s.get("Assessment.outcome"),
            actions=tuple(PlanAction(n, **p) for n, p in g.get("Assessment.actions", [])),
            lead_professionals=tuple(
                LeadProfessionalPeriod(
                    Practitioner(**{k: v for k, v in p.items() if not k.endswith("_date")}),
                    p.get("from_date"),
                    p.get("to_date"),
                )
                for _, p in g.get("Assessment.lead_professionals", [])
            ),
            tac_meetings=tuple(TacMeeting(**p) for _, p in g.get("Assessment.tac_meetings", [])),
            events=tuple(self._event(p) for _, p in g.get("Assessment.events", [])),
            flags=tuple(Flag(**p) for _, p in g.get("Assessment.flags", [])),
            child_views=s.get("Assessment.child_views"),
            source_system=s.get("Assessment.source_system", self.m.source_system),
        )

    @staticmethod
    def _event(parts: dict[str, Any]) -> CaseEvent:
        return CaseEvent(**parts)

    def _consent(
        self,
        s: dict[str, Any],
        scope_flags: dict[ConsentScope, bool],
        withdrawn: list[tuple[int, dict[str, Any]]],
    ) -> ConsentRecord | None:
        given = s.get("ConsentRecord.given")
        if given is None:
            return None
        scopes = list(s.get("ConsentRecord.scopes", ()))
        scopes += [scope for scope, on in scope_flags.items() if on and scope not in scopes]
        return ConsentRecord(
            given=given,
            given_by=s.get("ConsentRecord.given_by"),
            role=s.get("ConsentRecord.role"),
            role_text=s.get("ConsentRecord.role_text"),
            gillick_competent=bool(s.get("ConsentRecord.gillick_competent", False)),
            recorded_at=s.get("ConsentRecord.recorded_at"),
            scopes=tuple(scopes),
            named_las=s.get("ConsentRecord.named_las", ()),
            withdrawn=tuple(Withdrawal(**p) for _, p in withdrawn),
        )


def _reported(check: RecordCheck, field: str) -> bool:
    return any(p.field == field for p in check.problems)
