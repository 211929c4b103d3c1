"""The subject-access report as a PDF (fpdf2, DejaVu Sans for every alphabet's names).

The same sections as the HTML page, as tables on A4 landscape. The font
comes from Debian's ``fonts-dejavu-core`` (``scripts/ensure-system-deps.sh``
installs it; the Docker image has it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from gateway.errors import ConfigError
from gateway.subject_access.report import SubjectAccessReport

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVu"


def _when(value: object) -> str:
    return value.strftime("%d %b %Y %H:%M") if hasattr(value, "strftime") else ""


class _Page(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self._title = title
        regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
        if not regular.is_file() or not bold.is_file():
            raise ConfigError(
                f"the report font is missing ({regular}); install it with: "
                "apt-get install fonts-dejavu-core"
            )
        self.add_font(FONT, "", str(regular))
        self.add_font(FONT, "B", str(bold))
        self.set_auto_page_break(auto=True, margin=14)
        self.set_title(title)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7)
        self.cell(0, 5, f"{self._title} · page {self.page_no()}", align="R")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(FONT, "B", 12)
        self.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, "", 8)

    def para(self, text: str, size: int = 8) -> None:
        self.set_font(FONT, "", size)
        self.multi_cell(0, 4.5, text, new_x="LMARGIN", new_y="NEXT")

    def rows(self, head: Sequence[str], widths: Sequence[int], body: list[Sequence[str]]) -> None:
        if not body:
            self.para("None.")
            return
        self.set_font(FONT, "", 7.5)
        with self.table(
            col_widths=tuple(widths),
            text_align="LEFT",
            line_height=4,
            headings_style=FontFace(emphasis="BOLD", fill_color=(243, 242, 241)),
        ) as table:
            header = table.row()
            for text in head:
                header.cell(text)
            for line in body:
                row = table.row()
                for text in line:
                    row.cell(text)


def render_pdf(report: SubjectAccessReport) -> bytes:
    """The report as a PDF document."""
    s = report.subject
    who = f"{s.given_name} {s.family_name}" if s.given_name else "this child"
    pdf = _Page(f"Subject access report, {report.authority_name}")
    pdf.add_page()
    pdf.set_font(FONT, "B", 15)
    pdf.multi_cell(
        0, 8, f"What {report.authority_name} shared about {who}", new_x="LMARGIN", new_y="NEXT"
    )
    facts = [f"produced {_when(report.generated_at)} UTC (UK GDPR Article 15)"]
    if s.date_of_birth:
        facts.append(f"date of birth {s.date_of_birth}")
    facts.extend(s.identifiers)
    pdf.para(" · ".join(facts), 9)
    if report.review:
        pdf.heading("For the data protection officer before release")
        for line in report.review:
            pdf.para(f"• {line}")
    pdf.heading(f"Who it was shared with ({len(report.disclosures)})")
    pdf.rows(
        ("Sent to", "What", "When", "Basis", "Fields"),
        (45, 55, 38, 50, 89),
        [
            (
                f"{d.to_name} ({d.to})",
                f"{d.what}\n{d.case_ref or ''}\n{d.message_id}",
                (f"sent {_when(d.sent_at)}" if d.sent_at else f"not sent yet ({d.status})")
                + (f"\ndelivered {_when(d.delivered_at)}" if d.delivered_at else ""),
                f"{d.legal_basis}"
                + (f" for {d.purpose}" if d.purpose else "")
                + (f"\nconsent {d.consent_ref}" if d.consent_ref else "")
                + (f"\napproved by {d.approved_by}" if d.approved_by else ""),
                ", ".join(d.fields) or "no longer held",
            )
            for d in report.disclosures
        ],
    )
    pdf.heading(f"What other authorities sent us ({len(report.received)})")
    pdf.rows(
        ("From", "What", "Received", "Basis", "Fields"),
        (45, 55, 38, 50, 89),
        [
            (
                f"{m.sender_name} ({m.sender})",
                f"{m.what}\n{m.message_id}",
                f"{_when(m.received_at)}\n{m.status}",
                m.legal_basis + (f" for {m.purpose}" if m.purpose else ""),
                ", ".join(m.fields) or "no longer held",
            )
            for m in report.received
        ],
    )
    pdf.heading(f"Kept here, not shared ({len(report.not_shared)})")
    pdf.rows(
        ("Would have gone to", "What", "Why not", "When"),
        (40, 55, 142, 40),
        [(n.to, n.what, f"{n.status}: {n.reason or ''}", _when(n.at)) for n in report.not_shared],
    )
    pdf.heading(f"Consent decisions ({len(report.consent)})")
    pdf.rows(
        ("Recorded", "By", "Decision", "Covers", "Withdrawn"),
        (45, 60, 30, 97, 45),
        [
            (
                f"{_when(c.entered_at)}\nfrom {c.source}",
                (c.given_by or "not recorded")
                + (
                    f" ({c.role}{', Gillick competent' if c.gillick_competent else ''})"
                    if c.role
                    else ""
                ),
                c.action,
                ", ".join(c.scopes) + (f"\nnamed: {', '.join(c.named_las)}" if c.named_las else ""),
                ", ".join(c.withdrawn),
            )
            for c in report.consent
        ],
    )
    pdf.heading(f"When the records were opened ({len(report.accesses)})")
    pdf.rows(
        ("When", "Where", "How", "Record"),
        (40, 70, 97, 70),
        [(_when(a.at), a.where, a.how, a.message_id) for a in report.accesses],
    )
    pdf.heading(f"Recalls, corrections and withdrawals ({len(report.lifecycle)})")
    pdf.rows(
        ("When", "What", "With", "Detail"),
        (40, 35, 25, 177),
        [
            (_when(e.at), e.kind, e.counterparty, f"{e.detail}\n{e.message_id}")
            for e in report.lifecycle
        ],
    )
    pdf.ln(4)
    for note in report.notes:
        pdf.para(note, 7)
    return bytes(pdf.output())
