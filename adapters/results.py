"""What the readers and writers of every adapter finish with.

``to_result`` turns a converted record and its problems into a
``Converted`` (with the consent change and the LAs the consent names) or a
``Rejected``; ``Encoder`` collects the canonical values a local format has
no code for, so that ``write`` fails once, naming every one of them.
"""

from __future__ import annotations

from adapters.base import Converted, Rejected, Result
from adapters.checks import RecordCheck
from adapters.codelists import CodeList, T
from gateway.errors import FieldProblem, RecordError
from gateway.model import Assessment, ConsentAction, ConsentChange, FlagCode, Purpose


def to_result(
    check: RecordCheck,
    assessment: Assessment | None,
    known_authorities: frozenset[str],
    share_field: str,
) -> Result:
    """``Converted`` when the record has no problems, else ``Rejected``.

    ``share_with`` is the LAs the consent names; each must be an authority of
    the region directory (``known_authorities``, when one is given).
    """
    consent = assessment.consent if assessment is not None else None
    share_with = consent.named_las if consent is not None else ()
    if known_authorities:
        for code in share_with:
            if code not in known_authorities:
                check.add(share_field, "not an authority in the region directory", code)
    if assessment is None or check.problems:
        return Rejected(check.source, check.record, tuple(check.problems))
    change = None
    if consent is not None:
        action = ConsentAction.GIVEN if consent.given else ConsentAction.REFUSED
        change = ConsentChange(assessment.case_ref, assessment.child, action, consent)
    harm = any(flag.code is FlagCode.SIGNIFICANT_HARM for flag in assessment.flags)
    purpose = Purpose.SAFEGUARDING_REFERRAL if harm else Purpose.SHARE_CROSS_BORDER
    return Converted(check.source, check.record, assessment, change, share_with, purpose)


class Encoder:
    """Encodes canonical values as local codes, collecting the ones that have none."""

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self.problems: list[FieldProblem] = []

    def code(self, codes: CodeList[T], value: T | None, record: str, field: str) -> str | None:
        """The local code of ``value`` (``None`` stays ``None``)."""
        if value is None:
            return None
        local = codes.encode(value)
        if local is None:
            reason = f"no {codes.name} code in the {self.adapter} mapping for this value"
            self.problems.append(FieldProblem(self.adapter, record, field, reason, value))
        return local

    def raise_problems(self) -> None:
        """Raise ``RecordError`` naming every value that could not be encoded."""
        if self.problems:
            raise RecordError(self.problems)
