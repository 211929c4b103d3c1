"""Cells a spreadsheet would run as a formula, written as text (CSV injection).

A received record is written into a local CSV file that someone will open in
a spreadsheet; a cell such as ``=cmd|' /C calc'!A1`` or
``=HYPERLINK("https://...?"&A1)`` would then run. OWASP's rule for CSV
injection: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with a single quote, which spreadsheets read as
"this cell is text" and do not show. Every CSV writer of a local format
(``adapters.dudley.writer``, ``adapters.generic.csv_adapter``,
``gateway.services.local_notices``) passes its data cells through
``neutralise``; quoting of separators and quotes is the ``csv`` module's.

The prefix is reversible, so a file written here reads back as it was
(``restore``, which ``adapters.csv_source`` applies to every data cell): a
cell that already starts with quotes before a formula character gets one
more, and reading removes exactly one. A system that imports the file as data
rather than through a spreadsheet removes one leading ``'`` from a cell whose
rest starts with one of those characters (or with ``'`` followed by them).
"""

from __future__ import annotations

# OWASP "CSV Injection": the characters a formula may start with.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _escaped(text: str) -> bool:
    """Whether ``text`` must be written with a quote in front."""
    return text.lstrip(QUOTE).startswith(FORMULA_START)


def neutralise(text: str) -> str:
    """``text`` as a cell no spreadsheet runs as a formula."""
    return QUOTE + text if _escaped(text) else text


def restore(cell: str) -> str:
    """The text ``neutralise`` wrote as ``cell`` (a cell it did not change is unchanged)."""
    return cell[1:] if cell.startswith(QUOTE) and _escaped(cell[1:]) else cell
