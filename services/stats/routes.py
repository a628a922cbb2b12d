"""stats' reports API (scope reports:read): JSON, CSV and .xlsx (exports.py), projection
status, printable HTML.

A token bound to territories reads only figures filtered to one of them (`territory=`;
403 `forbidden_territory` otherwise, naming the territories it may ask for). Every read
of a report is audited (`read_report`, the report, year and filters as object id); the
projections' status carries no figures and is not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from enum import StrEnum
from html import escape
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from alfi_contracts.topics import CASEWORK_EVENTS, INTAKE_EVENTS, VEILLE_EVENTS
from alfi_contracts.vocabulary import Programme, Slug
from services.common.access import authorise_report
from services.common.http import Authorised, audited_read, request_principal
from services.common.problems import JSON, responses_for

from . import exports, generations, reports
from .answers import Activity, Breakdown, ProjectionStatus
from .charts import bar_chart
from .labels import FIGURE_LABELS, PROGRAMME_LABELS

READ = Authorised("reports:read")
EVENT_TOPICS = (INTAKE_EVENTS, CASEWORK_EVENTS, VEILLE_EVENTS)
Year = Annotated[int, Query(ge=1900, le=2100, description="calendar year, e.g. 2023")]
ProgrammeFilter = Annotated[Programme | None, Query()]
TerritoryFilter = Annotated[Slug | None, Query()]

Dimension = StrEnum("Dimension", {name: name for name in reports.DIMENSIONS})


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"
    CSV_RAW = "csv-raw"
    XLSX = "xlsx"


FormatChoice = Annotated[Format, Query(description=(
    "`json`; `csv`: French table for French Excel (`;`, UTF-8 BOM, CRLF, French headers and labels, a"
    " `Total` line); `csv-raw`: the machine form (`,`, snake_case headers, slug values, no total, as"
    " `csv` was before); `xlsx`: the French table as a workbook"))]
REPORT = responses_for(params=True)
BREAKDOWN_RESPONSES = REPORT | {200: {
    "description": "the rows and totals (JSON), or the table as a file to download", "model": Breakdown,
    "content": {JSON: {}, "text/csv": {"schema": {"type": "string"}},
                exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


@contextlib.asynccontextmanager
async def projection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A read-only transaction on the current generation: one consistent snapshot even
    while a rebuild switches generations."""
    async with request.app.state.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        generation = await generations.current(conn)
        await conn.execute(f"SET LOCAL search_path TO {generations.search_path(generation)}")
        yield conn


def report_id(name: str, year: int, **filters: str | None) -> str:
    """What the audit trail names a report by: `activity:2023:territory=bretagne`."""
    return ":".join([name, str(year), *(f"{k}={v}" for k, v in filters.items() if v is not None)])


def routes(runtime) -> APIRouter:  # noqa: ANN001
    router = APIRouter(dependencies=[READ])

    # Absent filters are left out of the answer, as reports.activity leaves them out.
    @router.get("/v1/reports/activity", tags=["reports"], response_model=Activity, response_model_exclude_none=True,
                responses=REPORT)
    async def activity(request: Request, year: Year, programme: ProgrammeFilter = None,
                       territory: TerritoryFilter = None) -> dict:
        """The headline figures of the year (the bilan), optionally for one programme or territory.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        async def read() -> dict:
            authorise_report(request_principal(request), territory)
            async with projection(request) as conn:
                return await reports.activity(conn, year, programme, territory)

        return await audited_read(request, "read_report", read,
                                  object_id=report_id("activity", year, programme=programme, territory=territory))

    @router.get("/v1/reports/activity/breakdown", tags=["reports"], responses=BREAKDOWN_RESPONSES)
    async def breakdown(request: Request, year: Year, by: Dimension, format: FormatChoice = Format.JSON,  # noqa: A002
                        programme: ProgrammeFilter = None, territory: TerritoryFilter = None) -> Response:
        """The figures split by one dimension; rows add up to the headline figures.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        async def read() -> tuple[list[dict], dict]:
            authorise_report(request_principal(request), territory)
            async with projection(request) as conn:
                return (await reports.breakdown(conn, year, by.value, programme, territory),
                        await reports.activity(conn, year, programme, territory))

        rows, totals = await audited_read(
            request, "read_report", read,
            object_id=report_id("breakdown", year, by=by.value, programme=programme, territory=territory))
        if format is Format.JSON:
            return JSONResponse({"year": year, "by": by.value, "rows": rows, "totals": totals})
        if format is Format.CSV_RAW:
            return download(exports.raw_csv(by.value, rows), exports.CSV_MEDIA_TYPE,
                            f"activity-{year}-by-{by.value}.csv")
        table = exports.french_table(by.value, rows, totals)
        if format is Format.XLSX:
            return download(exports.xlsx(table, f"Bilan {year}"), exports.XLSX_MEDIA_TYPE,
                            f"bilan-{year}-{by.value}.xlsx")
        return download(exports.french_csv(table), exports.CSV_MEDIA_TYPE, f"bilan-{year}-{by.value}.csv")

    @router.get("/v1/projections/status", tags=["projections"], response_model=ProjectionStatus,
                responses=responses_for())
    async def status(request: Request) -> dict:
        """Position and lag per partition, newest applied event per topic, generation.
        Scope `reports:read` (no figures: any territory)."""
        async with projection(request) as conn:
            generation = await generations.current(conn)
            positions = await conn.fetch(
                "SELECT topic, partition, next_offset FROM consumer_positions WHERE consumer = $1"
                " ORDER BY topic, partition", generations.PROJECTOR)
            freshness = await conn.fetch("SELECT topic, last_event_time, applied_at FROM freshness ORDER BY topic")
        ends = await runtime.end_offsets(EVENT_TOPICS)
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in positions}
        keys = sorted(set(stored) | set(ends))
        return {
            "generation": generation,
            "partitions": [
                {"topic": t, "partition": p, "position": stored.get((t, p), 0), "end_offset": ends.get((t, p)),
                 "lag": None if (t, p) not in ends else max(ends[(t, p)] - stored.get((t, p), 0), 0)}
                for t, p in keys
            ],
            "topics": {r["topic"]: {"last_event_time": r["last_event_time"], "applied_at": r["applied_at"]}
                       for r in freshness},
        }

    @router.get("/reports/{year}", response_class=HTMLResponse, tags=["reports"], responses=REPORT)
    async def page(request: Request, year: Annotated[int, Path(ge=1900, le=2100)],
                   territory: TerritoryFilter = None) -> HTMLResponse:
        """The bilan of the year as a printable page, charts in SVG, optionally for one territory.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        async def read() -> str:
            authorise_report(request_principal(request), territory)
            async with projection(request) as conn:
                totals = await reports.activity(conn, year, None, territory)
                by_programme = await reports.breakdown(conn, year, "programme", None, territory)
                by_month = await reports.breakdown(conn, year, "month", None, territory)
            return render_page(year, totals, by_programme, by_month, territory)

        return HTMLResponse(await audited_read(request, "read_report", read,
                                               object_id=report_id("page", year, territory=territory)))

    return router


def download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def render_page(year: int, totals: dict, by_programme: list[dict], by_month: list[dict],
                territory: str | None = None) -> str:
    figures = "\n".join(
        f"<tr><th scope='row'>{escape(FIGURE_LABELS[f])}</th><td>{totals[f]:,}</td></tr>".replace(",", "\u202f")
        for f in reports.FIGURES)
    households = [(PROGRAMME_LABELS.get(r["programme"], "Hors dispositif"), r["households_followed"])
                  for r in by_programme if r["households_followed"]]
    months = [(r["month"], r["interviews_held"]) for r in by_month if r["month"]]
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Bilan {year} — Accompagnement social</title>
<style>
 body {{ font-family: sans-serif; margin: 2rem; color: #222; max-width: 52rem; }}
 table {{ border-collapse: collapse; margin-bottom: 2rem; }}
 th, td {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }}
 td {{ text-align: right; font-variant-numeric: tabular-nums; }}
 figure {{ margin: 0 0 2rem; break-inside: avoid; }}
 @media print {{ body {{ margin: 0; }} }}
</style></head>
<body>
<h1>Accompagnement social — bilan {year}{f" — {escape(territory)}" if territory else ""}</h1>
<p>Chiffres calculés à partir des événements de la plateforme. Aucune donnée nominative.</p>
<table><caption>Les principaux chiffres {year}</caption><tbody>
{figures}
</tbody></table>
<figure>{bar_chart(f"Ménages suivis par dispositif, {year}", households)}</figure>
<figure>{bar_chart(f"Entretiens réalisés par mois, {year}", months)}</figure>
</body></html>
"""
