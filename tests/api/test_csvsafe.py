"""Cells a spreadsheet would run as a formula are written as text."""

import csv
import io

import pytest

from shorty.api.csvsafe import Writer, escape_formula


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_starting_a_formula_gets_a_quote(start):
    assert escape_formula(f"{start}1+1") == f"'{start}1+1"
    assert escape_formula(start) == f"'{start}"


@pytest.mark.parametrize(
    "cell", ["", "a=b", " =1", "'=1", "https://x.example/?a=-1", -1, 3.5, None]
)
def test_other_cells_are_left_alone(cell):
    assert escape_formula(cell) == cell


def test_the_writer_escapes_every_cell_and_quotes_separators():
    buffer = io.StringIO()
    writer = Writer(buffer)
    writer.writerow(["=a,b", 'say "-1"', -1, "@x\n=y"])
    written = buffer.getvalue()
    assert written == '"\'=a,b","say ""-1""",-1,"\'@x\n=y"\r\n'
    assert next(csv.reader(io.StringIO(written, newline=""))) == [
        "'=a,b",
        'say "-1"',
        "-1",
        "'@x\n=y",
    ]
