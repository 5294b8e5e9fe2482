"""CSV that a spreadsheet opens as text: no cell of it runs as a formula.

Excel, LibreOffice Calc and Google Sheets run a cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula, and tab or carriage return can stand in
front of one. An export mixes links of every user (an admin's holds everyone's),
so one user's title would run on another's machine. As OWASP's CSV injection
guidance says, such a cell gets a leading ``'``, which spreadsheets take as
"this is text"; the csv module quotes separators, quotes and line breaks
(RFC 4180), so a cell cannot spill into the next one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(cell: object) -> object:
    """``cell``, with a leading ``'`` if it is text a spreadsheet would run."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


class Writer:
    """``csv.writer`` whose every cell goes through ``escape_formula``: the one way
    Shorty writes CSV."""

    def __init__(self, stream: SupportsWrite[str]) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([escape_formula(cell) for cell in row])
