"""A canonical ``Assessment`` -> local values of a generic mapping (inbound direction).

The inverse of ``convert``: for every mapped field, the value the
local format holds, typed (text, flag, number or list) so that the CSV and
JSON writers can spell it their own way. Canonical values the mapping has
no local code for are collected by an ``Encoder``, so that ``write`` fails
once, naming every one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapters.codelists import CodeList
from adapters.generic.fields import Kind
from adapters.generic.mapping import ISO, FieldRule, GenericMapping
from adapters.results import Encoder
from gateway.model import Assessment, ConsentRecord, Gender, PlanAction

LocalValue = str | bool | int | list[str]


@dataclass(frozen=True)
class Out:
    """One local value to write: its rule, group member number (or ``None``) and value."""

    rule: FieldRule
    n: int | None
    value: LocalValue


class Renderer:
    """Renders assessments for one mapping.

    In CSV ``{n}`` columns a plan action keeps its number (``seq``) when the
    numbers are distinct; other members are numbered in order. A group
    mapped to plain columns (no ``{n}``) holds only the latest member.
    """

    def __init__(self, mapping: GenericMapping) -> None:
        self.m = mapping

    def render(self, a: Assessment, encoder: Encoder) -> list[Out]:
        """Every mapped value of ``a`` that is recorded."""
        single = _single_values(a, self._scopes(a.consent))
        out: list[Out] = []
        for rule in self.m.rules:
            t = rule.target
            if t.group is not None:
                for n, member in self._members(a, t.group, rule):
                    value = _member_value(member, t.part or "")
                    self._add(out, rule, n, value, a.case_ref, encoder)
                continue
            if t.element is not None:
                found = [e for e in a.elements if e.element is t.element]
                value = None
                if found:
                    e = found[-1]
                    value = getattr(e, t.part or "")
                    rated = self.m.rule_for(f"Assessment.elements.{t.element}.rating")
                    if t.part == "concern" and value is None and e.rating and rated is None:
                        value = e.rating > 1  # rating 1 is "no concern"
            elif t.scope is not None:
                scopes = self._scopes(a.consent)
                value = None if scopes is None else t.scope in scopes
            elif t.scheme is not None:
                value = a.child.identifier(t.scheme)
            else:
                value = single.get(t.text)
            if t.text == "Child.gender" and value is Gender.NOT_KNOWN:
                codes = self.m.codes["gender"]
                value = value if codes.encode(Gender.NOT_KNOWN) is not None else None
            self._add(out, rule, None, value, a.case_ref, encoder)
        return out

    def _scopes(self, consent: ConsentRecord | None) -> tuple[str, ...] | None:
        """The scopes to write: withdrawn ones are left out unless withdrawals are mapped."""
        if consent is None:
            return None
        if self.m.maps_group("ConsentRecord.withdrawn"):
            return consent.scopes
        active = consent.active_scopes()
        return tuple(s for s in consent.scopes if s in active)

    def _members(self, a: Assessment, group: str, rule: FieldRule) -> list[tuple[int, Any]]:
        attr = group.rpartition(".")[2]
        holder: Any = a.consent if group.startswith("ConsentRecord.") else a
        items: Sequence[Any] = getattr(holder, attr) if holder is not None else ()
        if not items:
            return []
        if self.m.kind == "csv" and "{n}" not in rule.source:
            return [(1, items[-1])]  # one column only: the current (latest) member
        if self.m.kind == "csv" and group == "Assessment.actions":
            return sorted(_place_actions(items).items())
        return list(enumerate(items, start=1))

    def _add(
        self,
        out: list[Out],
        rule: FieldRule,
        n: int | None,
        value: Any,
        record: str,
        encoder: Encoder,
    ) -> None:
        local = self._local(rule, n, value, record, encoder)
        if local is not None and local not in ("", []):
            out.append(Out(rule, n, local))

    def _local(
        self, rule: FieldRule, n: int | None, value: Any, record: str, encoder: Encoder
    ) -> LocalValue | None:
        if value is None:
            return None
        slot, field = rule.target.slot, rule.field(n)
        kind = slot.kind
        if kind is Kind.CODE:
            return encoder.code(self.m.codes[slot.codes or ""], value, record, field)
        if kind is Kind.CODES:
            codes = self.m.codes[slot.codes or ""]
            found = [encoder.code(codes, v, record, field) for v in value]
            return [c for c in found if c is not None]
        names = self.m.codes.get("la")
        if kind is Kind.LAS:
            return [self._la_name(names, v) for v in value]
        if kind is Kind.LA:
            return self._la_name(names, value)
        if kind is Kind.DATE:
            return self._date(value)
        if kind is Kind.INSTANT:
            return self._instant(value)
        if kind in (Kind.FLAG, Kind.RATING):
            return value  # type: ignore[no-any-return]
        return str(value)

    @staticmethod
    def _la_name(names: CodeList[str] | None, code: str) -> str:
        """An LA code as the export writes it: its name when the mapping has ``codes.la``."""
        return (names.encode(code) if names is not None else None) or code

    def _date(self, value: date | datetime) -> str:
        day = value.astimezone(self.m.zone).date() if isinstance(value, datetime) else value
        fmt = self.m.date_formats[0]
        return day.isoformat() if fmt == ISO else day.strftime(fmt)

    def _instant(self, value: datetime) -> str:
        local = value.astimezone(self.m.zone)
        fmt = self.m.datetime_formats[0]
        return local.isoformat() if fmt == ISO else local.strftime(fmt)


def _member_value(member: Any, part: str) -> Any:
    if part in ("from_date", "to_date"):
        return getattr(member, part)
    if hasattr(member, "practitioner"):  # a lead professional period
        return getattr(member.practitioner, part)
    return getattr(member, part)


def _place_actions(actions: Sequence[PlanAction]) -> dict[int, PlanAction]:
    """Group number -> action: by ``seq`` when those are distinct and positive."""
    seqs = [a.seq for a in actions]
    if all(s > 0 for s in seqs) and len(set(seqs)) == len(seqs):
        return {a.seq: a for a in actions}
    return dict(enumerate(actions, start=1))


def _single_values(a: Assessment, scopes: tuple[str, ...] | None) -> dict[str, Any]:
    child, init, consent = a.child, a.initiator, a.consent
    address, school = child.address, child.school
    values: dict[str, Any] = {
        "Assessment.case_ref": a.case_ref,
        "Assessment.status": a.status,
        "Assessment.started_on": a.started_on,
        "Assessment.completed_on": a.completed_on,
        "Assessment.strengths": a.strengths,
        "Assessment.needs": a.needs,
        "Assessment.child_views": a.child_views,
        "Assessment.outcome": a.outcome,
        "Assessment.source_system": a.source_system,
        "Child.given_name": child.given_name,
        "Child.family_name": child.family_name,
        "Child.preferred_name": child.preferred_name,
        "Child.date_of_birth": child.date_of_birth,
        "Child.gender": child.gender,
        "Child.ethnicity": child.ethnicity,
        "Child.religion": child.religion,
        "Child.language": child.language,
        "Child.interpreter_needed": child.interpreter_needed,
        "Child.local_person_id": child.local_person_id,
    }
    if init is not None:
        for part in ("name", "role", "organisation", "la_code", "email"):
            values[f"Assessment.initiator.{part}"] = getattr(init, part)
    if address is not None:
        for part in ("line1", "town", "postcode", "la_code"):
            values[f"Child.address.{part}"] = getattr(address, part)
    if school is not None:
        values["Child.school.name"] = school.name
        values["Child.school.la_code"] = school.la_code
    if consent is not None:
        values |= {
            "ConsentRecord.given": consent.given,
            "ConsentRecord.given_by": consent.given_by,
            "ConsentRecord.role": consent.role,
            "ConsentRecord.role_text": consent.role_text,
            "ConsentRecord.gillick_competent": consent.gillick_competent,
            "ConsentRecord.recorded_at": consent.recorded_at,
            "ConsentRecord.scopes": scopes,
            "ConsentRecord.named_las": consent.named_las,
        }
    return values
