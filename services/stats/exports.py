"""A breakdown as files people open: the French table (French headers and labels, a
total row) as CSV for French Excel (`;`, UTF-8 BOM, CRLF) and as .xlsx (openpyxl), and
the machine CSV scripts read (slugs, snake_case headers, `,`), unchanged since it was
the only CSV."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font

from fastapi import Response

from services.common.exports import CSV_MEDIA_TYPE, download, french_csv  # noqa: F401 - routes use them from here

from .labels import DIMENSION_LABELS, FIGURE_LABELS, TOTAL, value_label
from .reports import FIGURES

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# A count withheld from publication (services/stats/suppression.py): "secret statistique".
WITHHELD = "s"


def french_table(by: str, rows: list[dict], totals: dict, withheld: str = "") -> list[list[str | int]]:
    """Header, one line per row, and a total line (the headline figures the rows add up to);
    a withheld count (None) is written `withheld`."""
    def cell(value: int | None) -> str | int:
        return withheld if value is None else value

    return [
        [DIMENSION_LABELS[by], *(FIGURE_LABELS[f] for f in FIGURES)],
        *([value_label(by, row[by]), *(cell(row[f]) for f in FIGURES)] for row in rows),
        [TOTAL, *(cell(totals[f]) for f in FIGURES)],
    ]


def raw_csv(by: str, rows: list[dict]) -> bytes:
    """The machine form: dimension slug then figure names as headers, slug values, an
    empty cell for a dimension that does not apply, no total line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[by, *FIGURES], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx(table: list[list[str | int]], title: str) -> bytes:
    """The French table as a one-sheet workbook, header and total in bold, header frozen."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    for line in table:
        sheet.append(line)
    bold = Font(bold=True)
    for cell in (*sheet[1], *sheet[sheet.max_row]):
        cell.font = bold
    sheet.freeze_panes = "B2"
    for column, header in zip(sheet.columns, table[0], strict=True):
        width = max(len(str(header)), *(len(str(c.value)) for c in column))
        sheet.column_dimensions[column[0].column_letter].width = min(width + 2, 40)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def table_download(table: list[list[str | int]], name: str, sheet: str, as_xlsx: bool) -> Response:
    """A French table as the file people open: `name`.xlsx (one sheet, `sheet`), or
    `name`.csv for French Excel."""
    if as_xlsx:
        return download(xlsx(table, sheet), XLSX_MEDIA_TYPE, f"{name}.xlsx")
    return download(french_csv(table), CSV_MEDIA_TYPE, f"{name}.csv")
