"""The breakdown's exports on the real stack: the French CSV (default) and .xlsx hold the
same table, whose rows add up to its total line and to the headline figures; the machine
CSV (`csv-raw`) is byte for byte what `format=csv` answered before the French one.

Year 1999 is this module's own (see tests/integration/test_stats.py on years); its
households are closed the year after."""

from __future__ import annotations

import csv
import io
from datetime import date

from openpyxl import load_workbook

from services.stats.reports import FIGURES
from tests.integration import events as e
from tests.integration.test_stats import settle

Y = 1999
DIMENSIONS = ("programme", "territory", "month", "worker", "workshop_theme", "landlord")


async def breakdown(platform, by: str, format: str):  # noqa: A002, ANN201
    response = await platform.stats.get("/v1/reports/activity/breakdown",
                                        params={"year": Y, "by": by, "format": format},
                                        headers=platform.auth("reports:read"))
    assert response.status_code == 200, response.text
    return response


def old_csv(by: str, rows: list[dict]) -> bytes:
    """What `format=csv` answered before the French CSV, from the JSON rows."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[by, *FIGURES], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def test_french_csv_xlsx_and_the_machine_csv(platform):
    a = e.household(date(Y, 1, 10), programme="jeunes_ase", territory="ile-de-france", worker="sw-991")
    b = e.household(date(Y, 3, 5), programme="fnavdl", territory="bretagne", worker="sw-992")
    escalated = e.escalated(b.household_id, date(Y, 8, 20))
    await e.publish(platform.bootstrap, [
        a, b,
        e.interview(a.household_id, date(Y, 1, 15), worker="sw-991"),
        e.interview(b.household_id, date(Y, 8, 2), worker="sw-992"),
        e.interview(b.household_id, date(Y, 12, 1), worker="sw-991"),
        e.workshop(date(Y, 4, 1), 7, theme="energy_saving"), e.workshop(date(Y, 8, 9), 5, theme="budget"),
        escalated, e.meeting(date(Y, 9, 1), [escalated.situation_id]),
        e.rehousing(a.household_id, date(Y, 6, 1), youth=True, dalo=True),
        e.closed(a.household_id, date(Y + 1, 1, 5)), e.closed(b.household_id, date(Y + 1, 1, 5)),
    ])
    headline = await settle(platform, Y, households_followed=2, interviews_held=3, social_workers_active=2,
                            workshops_held=2, workshop_participants=12, situations_escalated=1,
                            veille_meetings=1, situations_reviewed=1, rehousings=1)
    for by in DIMENSIONS:
        french = await breakdown(platform, by, "csv")
        assert french.headers["content-type"] == "text/csv; charset=utf-8"
        assert french.headers["content-disposition"] == f'attachment; filename="bilan-{Y}-{by}.csv"'
        assert french.content.startswith(b"\xef\xbb\xbf")
        text = french.content.decode("utf-8-sig")
        assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
        header, *lines, total = table
        assert len(header) == 1 + len(FIGURES)
        assert header[1:3] == ["Ménages suivis", "Entretiens réalisés"]
        assert total[0] == "Total"
        assert [int(v) for v in total[1:]] == [headline[f] for f in FIGURES], by
        for column in range(1, len(header)):
            assert sum(int(line[column]) for line in lines) == int(total[column]), (by, header[column])

        workbook = await breakdown(platform, by, "xlsx")
        assert workbook.headers["content-type"] == (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        assert workbook.headers["content-disposition"] == f'attachment; filename="bilan-{Y}-{by}.xlsx"'
        sheet = load_workbook(io.BytesIO(workbook.content)).active
        cells = [[str(v) for v in line] for line in sheet.iter_rows(values_only=True)]
        assert cells == table, by

        rows = (await breakdown(platform, by, "json")).json()["rows"]
        raw = await breakdown(platform, by, "csv-raw")
        assert raw.content == old_csv(by, rows), by
        assert raw.headers["content-type"] == "text/csv; charset=utf-8"
        assert raw.headers["content-disposition"] == f'attachment; filename="activity-{Y}-by-{by}.csv"'
        if by == "month":
            firsts = [line[0] for line in lines]
            assert firsts[:2] == ["janvier 1999", "mars 1999"] and "août 1999" in firsts
            assert header[0] == "Mois"
        if by == "programme":
            assert header[0] == "Programme"
            assert [line[0] for line in lines] == ["FNAVDL", "Jeunes issus de l'ASE", "Non applicable"]
        if by == "workshop_theme":
            assert header[0] == "Thème d'atelier"
            assert {"Budget", "Économies d'énergie", "Non applicable"} == {line[0] for line in lines}
