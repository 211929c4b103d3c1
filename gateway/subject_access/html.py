"""The subject-access report as a readable HTML page (Jinja2, autoescaped)."""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.subject_access.report import SubjectAccessReport

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: SubjectAccessReport) -> str:
    """The report as one self-contained HTML page."""
    return _environment().get_template("report.html").render(r=report)
