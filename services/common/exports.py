"""Tables as files people open: the French CSV that French Excel reads in columns, and
the download answer that carries a file. Written with the standard library's csv module:
what is ours is only the dialect French Excel expects."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from fastapi.responses import Response

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def french_csv(table: Iterable[Sequence[str | int | None]]) -> bytes:
    """What French Excel opens in columns: `;` (the decimal comma takes `,`), a BOM so it
    reads UTF-8, CRLF line ends."""
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(table)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def download(body: bytes, media_type: str, filename: str) -> Response:
    """A file to save rather than show (`Content-Disposition: attachment`)."""
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
