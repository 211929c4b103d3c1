"""Canonical assessments -> a Dudley register CSV (inbound direction).

Same header as Dudley's own export, with as many ``ACTION_n`` groups as the
assessments need; Windows-1252 bytes and CRLF line ends. Everything the
reader maps is written back, so Dudley -> canonical -> Dudley keeps every
mapped column. A value Dudley has no code for, or a character
Windows-1252 cannot hold, fails the whole write with ``RecordError``
naming every such value. A cell a spreadsheet would run as a formula is
written as text (``adapters.csv_cells``).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime

from adapters.csv_cells import neutralise
from adapters.dudley.mapping import ActionPart, DudleyMapping, Target
from adapters.results import Encoder
from gateway.errors import FieldProblem
from gateway.identifiers import format_date
from gateway.model import Assessment, ElementAssessment, Gender, PlanAction


def write_csv(mapping: DudleyMapping, assessments: Sequence[Assessment]) -> bytes:
    """The Dudley CSV bytes of ``assessments``."""
    placed = [_place_actions(a.actions) for a in assessments]
    groups = max([mapping.min_action_groups, *(max(p, default=0) for p in placed)])
    header = mapping.header_for(groups)
    encoder = Encoder(mapping.name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for assessment, actions in zip(assessments, placed, strict=True):
        cells = _cells(mapping, assessment, actions, encoder)
        writer.writerow(
            [
                neutralise(_encodable(cells.get(c, ""), mapping, assessment.case_ref, c, encoder))
                for c in header
            ]
        )
    encoder.raise_problems()
    return buffer.getvalue().encode(mapping.encoding)


def _place_actions(actions: Sequence[PlanAction]) -> dict[int, PlanAction]:
    """Action group number -> action: by ``seq`` when those are distinct and positive."""
    seqs = [a.seq for a in actions]
    if all(s > 0 for s in seqs) and len(set(seqs)) == len(seqs):
        return {a.seq: a for a in actions}
    return dict(enumerate(actions, start=1))


def _cells(
    m: DudleyMapping, a: Assessment, actions: dict[int, PlanAction], encoder: Encoder
) -> dict[str, str]:
    child, initiator, consent = a.child, a.initiator, a.consent
    address, school = child.address, child.school
    lead = a.lead_professionals[-1].practitioner if a.lead_professionals else None
    tac = a.tac_meetings[-1].held_on if a.tac_meetings else None
    values: dict[Target, str | None] = {
        Target.CASE_REF: a.case_ref,
        Target.UPN: child.identifier("UPN"),
        Target.NHS: child.identifier("NHS"),
        Target.GIVEN_NAME: child.given_name,
        Target.FAMILY_NAME: child.family_name,
        Target.DOB: _day(m, child.date_of_birth),
        Target.GENDER: None
        if child.gender is Gender.NOT_KNOWN
        else encoder.code(m.gender, child.gender, a.case_ref, m.col(Target.GENDER)),
        Target.POSTCODE: address.postcode if address else None,
        Target.HOME_LA: address.la_code if address else None,
        Target.SCHOOL: school.name if school else None,
        Target.INITIATOR: initiator.name if initiator else None,
        Target.INITIATOR_ROLE: initiator.role if initiator else None,
        Target.INITIATOR_ORG: initiator.organisation if initiator else None,
        Target.INITIATOR_LA: initiator.la_code if initiator else None,
        Target.STARTED: _day(m, a.started_on),
        Target.STRENGTHS: a.strengths,
        Target.NEEDS: a.needs,
        Target.OUTCOME: encoder.code(m.outcome, a.outcome, a.case_ref, m.col(Target.OUTCOME)),
        Target.LEAD_NAME: lead.name if lead else None,
        Target.LEAD_ORG: lead.organisation if lead else None,
        Target.LEAD_LA: lead.la_code if lead else None,
        Target.TAC_DATE: _day(m, tac),
        Target.STATUS: encoder.code(m.status, a.status, a.case_ref, m.col(Target.STATUS)),
    }
    if consent is not None:
        active = consent.active_scopes()
        cross = bool(m.cross_border_scopes) and active.issuperset(m.cross_border_scopes)
        role_text = consent.role_text
        if role_text is None and consent.role is not None:
            role_text = encoder.code(
                m.consent_role, consent.role, a.case_ref, m.col(Target.CONSENT_ROLE)
            )
        values |= {
            Target.CONSENT_GIVEN: m.flag_yes if consent.given else m.flag_no,
            Target.CONSENT_BY: consent.given_by,
            Target.CONSENT_ROLE: role_text,
            Target.CONSENT_DATE: _day(m, consent.recorded_at),
            Target.SHARE_CROSS_BORDER: m.flag_yes if cross else m.flag_no,
            Target.SHARE_WITH: m.list_separator.join(consent.named_las),
        }
    cells = {m.col(t): v for t, v in values.items() if v is not None}
    by_element = {e.element: e for e in reversed(a.elements)}
    for column, element in m.elements.items():
        if element in by_element:
            cells[column] = _element_cell(m, by_element[element])
    for n, action in actions.items():
        cells[m.actions.column(ActionPart.DESCRIPTION, n)] = action.description
        cells[m.actions.column(ActionPart.OWNER, n)] = action.owner or ""
        cells[m.actions.column(ActionPart.DUE, n)] = _day(m, action.due) or ""
    return cells


def _element_cell(m: DudleyMapping, e: ElementAssessment) -> str:
    """Y (concern, no detail), N (no concern), or the notes of a concern."""
    concern = e.concern
    if concern is None and e.rating is not None:
        concern = e.rating > 1  # rating 1 is "no concern"
    if concern is False:
        return m.flag_no
    if e.notes:
        return e.notes
    return m.flag_yes if concern else ""


def _day(m: DudleyMapping, value: date | datetime | None) -> str | None:
    if value is None:
        return None
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, m.date_format)


def _encodable(text: str, m: DudleyMapping, record: str, column: str, encoder: Encoder) -> str:
    """``text`` if the file's encoding can hold it, else without accents, else a problem."""
    try:
        text.encode(m.encoding)
    except UnicodeEncodeError:
        plain = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
        try:
            plain.encode(m.encoding)
        except UnicodeEncodeError as exc:
            reason = f"character {exc.object[exc.start]!r} cannot be written in {m.encoding}"
            encoder.problems.append(FieldProblem(m.name, record, column, reason, text))
            return ""
        return plain
    return text
