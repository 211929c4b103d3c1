"""Field checks for one record: each failed check becomes a ``FieldProblem``.

A reader converts a whole record, collecting every problem rather than
stopping at the first, so that a practitioner sees all of them at once.
The checks return the normalised value, or ``None`` when it is invalid.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

from adapters.codelists import CodeList, T
from gateway import identifiers
from gateway.errors import FieldProblem


class RecordCheck:
    """Collects the problems of one record of one source file."""

    def __init__(self, source: str, record: str) -> None:
        self.source = source
        self.record = record
        self.problems: list[FieldProblem] = []

    def add(self, field: str, reason: str, value: str | None = None) -> None:
        """Record one problem."""
        self.problems.append(FieldProblem(self.source, self.record, field, reason, value))

    def code(self, codes: CodeList[T], value: str | None, field: str) -> T | None:
        """The canonical value of a local code; an unknown code is a problem."""
        if value is None:
            return None
        canonical = codes.decode(value)
        if canonical is None:
            known = ", ".join(codes.known())
            self.add(field, f"unknown {codes.name} code (known: {known})", value)
        return canonical

    def la(self, value: str | None, field: str) -> str | None:
        """A current DfE LA code."""
        if value is None:
            return None
        return self._checked(value, identifiers.la_code_problem(value), field)

    def upn(self, value: str | None, field: str) -> str | None:
        """A UPN with a correct check letter."""
        if value is None:
            return None
        value = value.strip().upper()
        return self._checked(value, identifiers.upn_problem(value), field)

    def nhs(self, value: str | None, field: str) -> str | None:
        """An NHS number, normalised to 10 digits."""
        if value is None:
            return None
        normalised = identifiers.normalise_nhs(value)
        return self._checked(normalised, identifiers.nhs_problem(value), field)

    def postcode(self, value: str | None, field: str) -> str | None:
        """A UK postcode, normalised (``b69 4lt`` -> ``B69 4LT``)."""
        if value is None:
            return None
        return self._checked(
            identifiers.normalise_postcode(value), identifiers.postcode_problem(value), field
        )

    def formatted_date(self, value: str | None, fmt: str, field: str) -> date | None:
        """A real date written as ``fmt``."""
        if value is None:
            return None
        try:
            return identifiers.parse_date(value, fmt)
        except identifiers.DateFormatError as exc:
            self.add(field, str(exc), value)
            return None

    def instant(self, value: str | None, zone: tzinfo, field: str) -> datetime | None:
        """An ISO 8601 date-time in UTC (a value without offset is in ``zone``)."""
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.add(field, "not an ISO 8601 date-time", value)
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)

    def day(self, value: str | None, field: str) -> date | None:
        """An ISO 8601 date, or the local date of an ISO 8601 date-time."""
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value).date()
        except ValueError:
            self.add(field, "not an ISO 8601 date", value)
            return None

    def rating(self, value: object, field: str) -> int | None:
        """A framework rating, 1 (no concern) to 4 (severe)."""
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
            self.add(field, "rating must be a whole number from 1 to 4", str(value))
            return None
        return value

    def _checked(self, value: str, problem: str | None, field: str) -> str | None:
        if problem is not None:
            self.add(field, problem, value)
            return None
        return value
