"""One Dudley register row -> canonical ``Assessment`` and ``ConsentChange``.

Every cell is checked and every problem of the row is collected, so a row
is either converted whole or rejected with the full list. Empty cells mean
"not recorded". Column names come from the mapping, never from this code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.base import Converted, Rejected, Result
from adapters.checks import RecordCheck
from adapters.csv_source import CsvRow
from adapters.dudley.mapping import ActionPart, DudleyMapping, Target
from gateway.identifiers import la_code_problem
from gateway.model import (
    Address,
    Assessment,
    Child,
    ConsentAction,
    ConsentChange,
    ConsentRecord,
    ElementAssessment,
    Gender,
    Identifier,
    LeadProfessionalPeriod,
    PlanAction,
    Practitioner,
    School,
    TacMeeting,
)

_Cell = Callable[[Target], "str | None"]


class RowConverter:
    """Converts rows of one Dudley export; ``known_authorities`` is the region directory."""

    def __init__(self, mapping: DudleyMapping, known_authorities: frozenset[str]) -> None:
        self.m = mapping
        self.known = known_authorities

    def convert(self, row: CsvRow, source: str, action_groups: Sequence[int]) -> Result:
        """The canonical records of ``row``, or every problem it has."""
        m = self.m
        check = RecordCheck(source, str(row.number))
        cells, columns = row.cells, m.columns

        def cell(target: Target) -> str | None:
            return cells[columns[target]].strip() or None

        def required(target: Target, reason: str) -> str | None:
            value = cell(target)
            if value is None:
                check.add(m.col(target), reason)
            return value

        case_ref = required(Target.CASE_REF, "case reference is missing")
        upn = check.upn(cell(Target.UPN), m.col(Target.UPN))
        nhs = check.nhs(cell(Target.NHS), m.col(Target.NHS))
        given_name = required(Target.GIVEN_NAME, "child's forename is missing")
        family_name = required(Target.FAMILY_NAME, "child's surname is missing")
        dob = check.formatted_date(cell(Target.DOB), m.date_format, m.col(Target.DOB))
        gender_code = cell(Target.GENDER)
        gender = (
            Gender.NOT_KNOWN
            if gender_code is None
            else check.code(m.gender, gender_code, m.col(Target.GENDER))
        )
        postcode = check.postcode(cell(Target.POSTCODE), m.col(Target.POSTCODE))
        home_la = check.la(cell(Target.HOME_LA), m.col(Target.HOME_LA))
        school = cell(Target.SCHOOL)
        initiator = self._initiator(check, cell)
        started = check.formatted_date(cell(Target.STARTED), m.date_format, m.col(Target.STARTED))
        consent, share_with = self._consent(check, cell)
        elements = self._elements(row)
        outcome = check.code(m.outcome, cell(Target.OUTCOME), m.col(Target.OUTCOME))
        status_code = required(Target.STATUS, "case status is missing")
        status = check.code(m.status, status_code, m.col(Target.STATUS))
        initiator_la = initiator.la_code if initiator else None
        actions = self._actions(check, row, action_groups, initiator_la)
        leads = self._lead(check, cell)
        tac_day = check.formatted_date(cell(Target.TAC_DATE), m.date_format, m.col(Target.TAC_DATE))

        if (
            check.problems
            or case_ref is None
            or given_name is None
            or family_name is None
            or gender is None
            or status is None
        ):
            return Rejected(source, str(row.number), tuple(check.problems))
        identifiers = tuple(
            Identifier(scheme, value) for scheme, value in (("UPN", upn), ("NHS", nhs)) if value
        )
        child = Child(
            given_name=given_name,
            family_name=family_name,
            date_of_birth=dob,
            gender=gender,
            identifiers=identifiers,
            address=Address(postcode=postcode, la_code=home_la) if postcode or home_la else None,
            school=School(school) if school else None,
        )
        assessment = Assessment(
            case_ref=case_ref,
            child=child,
            initiator=initiator,
            started_on=started,
            status=status,
            consent=consent,
            elements=elements,
            strengths=cell(Target.STRENGTHS),
            needs=cell(Target.NEEDS),
            outcome=outcome,
            actions=actions,
            lead_professionals=leads,
            tac_meetings=(TacMeeting(held_on=tac_day),) if tac_day else (),
            source_system=m.name,
        )
        change = None
        if consent is not None:
            action = ConsentAction.GIVEN if consent.given else ConsentAction.REFUSED
            change = ConsentChange(case_ref, child, action, consent)
        return Converted(source, str(row.number), assessment, change, share_with=share_with)

    def _flag(self, check: RecordCheck, value: str | None, column: str) -> bool | None:
        if value is None:
            return None
        if value in (self.m.flag_yes, self.m.flag_no):
            return value == self.m.flag_yes
        check.add(column, f"must be {self.m.flag_yes} or {self.m.flag_no}", value)
        return None

    def _initiator(self, check: RecordCheck, cell: _Cell) -> Practitioner | None:
        m = self.m
        name = cell(Target.INITIATOR)
        la_code = check.la(cell(Target.INITIATOR_LA), m.col(Target.INITIATOR_LA))
        if name is None:
            check.add(m.col(Target.INITIATOR), "no initiating practitioner")
            return None
        if cell(Target.INITIATOR_LA) is None:
            check.add(m.col(Target.INITIATOR_LA), "initiating practitioner's LA is missing")
        return Practitioner(
            name=name,
            role=cell(Target.INITIATOR_ROLE),
            organisation=cell(Target.INITIATOR_ORG),
            la_code=la_code,
        )

    def _consent(
        self, check: RecordCheck, cell: _Cell
    ) -> tuple[ConsentRecord | None, tuple[str, ...]]:
        m = self.m
        given = self._flag(check, cell(Target.CONSENT_GIVEN), m.col(Target.CONSENT_GIVEN))
        cross = cell(Target.SHARE_CROSS_BORDER)
        cross_border = self._flag(check, cross, m.col(Target.SHARE_CROSS_BORDER))
        if cross_border and given is not True:
            check.add(
                m.col(Target.SHARE_CROSS_BORDER),
                "cross-border sharing is marked but consent was not given",
                cross,
            )
        share_with = self._share_with(check, cell(Target.SHARE_WITH))
        role_text = cell(Target.CONSENT_ROLE)
        role = check.code(m.consent_role, role_text, m.col(Target.CONSENT_ROLE))
        recorded = check.formatted_date(
            cell(Target.CONSENT_DATE), m.date_format, m.col(Target.CONSENT_DATE)
        )
        by = cell(Target.CONSENT_BY)
        if given is None:
            if cell(Target.CONSENT_GIVEN) is None and (by or role_text or recorded):
                check.add(
                    m.col(Target.CONSENT_GIVEN),
                    "consent details are recorded but not whether consent was given",
                )
            return None, share_with
        scopes = m.consent_scopes + (m.cross_border_scopes if cross_border else ())
        record = ConsentRecord(
            given=given,
            given_by=by,
            role=role,
            role_text=role_text,
            gillick_competent=role_text in m.gillick_roles,
            recorded_at=recorded,
            scopes=scopes if given else (),
            named_las=share_with,
        )
        return record, share_with

    def _share_with(self, check: RecordCheck, value: str | None) -> tuple[str, ...]:
        column = self.m.col(Target.SHARE_WITH)
        codes: list[str] = []
        for part in (value or "").split(self.m.list_separator):
            code = part.strip()
            if not code or code in codes:
                continue
            problem = la_code_problem(code)
            if problem is None and code not in self.known:
                problem = f"{code} is not an authority in the region directory"
            if problem is not None:
                check.add(column, problem, code)
            codes.append(code)
        return tuple(codes)

    def _elements(self, row: CsvRow) -> tuple[ElementAssessment, ...]:
        out: list[ElementAssessment] = []
        for column, element in self.m.elements.items():
            value = row.cells[column].strip()
            if not value:
                continue
            if value == self.m.flag_yes:
                out.append(ElementAssessment(element, concern=True))
            elif value == self.m.flag_no:
                out.append(ElementAssessment(element, concern=False))
            else:
                out.append(ElementAssessment(element, concern=True, notes=value))
        return tuple(out)

    def _actions(
        self, check: RecordCheck, row: CsvRow, groups: Sequence[int], owner_la: str | None
    ) -> tuple[PlanAction, ...]:
        actions: list[PlanAction] = []
        for n in groups:
            columns = {part: self.m.actions.column(part, n) for part in ActionPart}
            text = {part: row.cells[c].strip() or None for part, c in columns.items()}
            if not any(text.values()):
                continue
            due = check.formatted_date(
                text[ActionPart.DUE], self.m.date_format, columns[ActionPart.DUE]
            )
            description = text[ActionPart.DESCRIPTION]
            if description is None:
                check.add(columns[ActionPart.DESCRIPTION], "action has no description")
                continue
            owner = text[ActionPart.OWNER]
            actions.append(
                PlanAction(
                    n, description, owner=owner, owner_la=owner_la if owner else None, due=due
                )
            )
        return tuple(actions)

    def _lead(self, check: RecordCheck, cell: _Cell) -> tuple[LeadProfessionalPeriod, ...]:
        m = self.m
        name, organisation = cell(Target.LEAD_NAME), cell(Target.LEAD_ORG)
        la_code = check.la(cell(Target.LEAD_LA), m.col(Target.LEAD_LA))
        if name is None:
            if organisation or cell(Target.LEAD_LA):
                check.add(
                    m.col(Target.LEAD_NAME),
                    "lead professional's organisation or LA is recorded without a name",
                )
            return ()
        lead = Practitioner(name=name, organisation=organisation, la_code=la_code)
        return (LeadProfessionalPeriod(lead),)
