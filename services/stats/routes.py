"""stats' reports API (scope reports:read): JSON, CSV and .xlsx (exports.py), projection
status, printable HTML; the follow-up of veille decisions (bilan.py) and the data-quality
report (quality.py), whose lists of ids also need the scope reports:quality.

A token bound to territories reads only figures filtered to one of them (`territory=`;
403 `forbidden_territory` otherwise, naming the territories it may ask for). Every read
of a report is audited (`read_report`, the report, year or day and filters as object id);
the projections' status carries no figures and is not.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, TypeVar
from urllib.parse import urlencode

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials

from alfi_contracts.vocabulary import Programme, Slug
from services.common import audit
from services.common.access import Forbidden, authorise_report
from services.common.auth import LINK_TTL_MAX, mint_report_link, principal_of_link
from services.common.errors import Invalid
from services.common.exports import download
from services.common.http import (Authorised, audited_read, bearer, request_context, request_principal,
                                  require_scope)
from services.common.problems import JSON, responses_for

from . import bilan, exports, generations, quality, reports, suppression
from .answers import (Activity, BilanDocument, Breakdown, DataQuality, FollowUpDocument, FunderDocument,
                      LinkRequest, ProjectionStatus, PublishedBreakdown, ReportLink)
from .labels import month_label
from .page import render_bilan, render_funder, render_quality

T = TypeVar("T")
READ = Authorised("reports:read")
QUALITY = "reports:quality"  # with reports:read: the data-quality report's ids
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
OnDate = Annotated[date | None, Query(description="the day the data-quality checks are made on (default: today)")]
IdsParam = Annotated[bool, Query(description=(
    "also list each check's pseudonymous ids (households, or situations); needs the scope `reports:quality`"))]
TableFormat = StrEnum("TableFormat", {"JSON": "json", "CSV": "csv", "XLSX": "xlsx"})
TableFormatChoice = Annotated[TableFormat, Query(description=(
    "`json`; `csv`: French table for French Excel (`;`, UTF-8 BOM, CRLF, French headers and labels);"
    " `xlsx`: the same as a workbook"))]
BREAKDOWN_RESPONSES = REPORT | {200: {
    "description": "the rows and totals (JSON), or the table as a file to download", "model": Breakdown,
    "content": {JSON: {}, "text/csv": {"schema": {"type": "string"}},
                exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


@contextlib.asynccontextmanager
async def projection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A read-only snapshot of the current generation (generations.snapshot)."""
    async with generations.snapshot(request.app.state.pool) as (conn, _):
        yield conn


def report_id(name: str, period: int | date, **filters: str | None) -> str:
    """What the audit trail names a report by: `activity:2023:territory=bretagne`,
    `data-quality:2023-12-31:ids=true`."""
    return ":".join([name, str(period), *(f"{k}={v}" for k, v in filters.items() if v is not None)])


async def read_report(request: Request, name: str, period: int | date,
                      compute: Callable[[asyncpg.Connection], Awaitable[T]], programme: str | None,
                      territory: str | None, *, needs: str | None = None, details: dict | None = None) -> T:
    """What `compute` reads in one snapshot of the projections, once the principal may read
    the territory (and has the scope `needs`, if any), audited as reading report `name`
    (report_id, with `details` beside the filters)."""
    async def read() -> T:
        principal = request_principal(request)
        authorise_report(principal, territory)
        if needs is not None and needs not in principal.scopes:
            raise Forbidden(f"The token lacks the scope {needs}")
        async with projection(request) as conn:
            return await compute(conn)

    return await audited_read(request, "read_report", read, object_id=report_id(
        name, period, **(details or {}), programme=programme, territory=territory))


def routes(runtime) -> APIRouter:  # noqa: ANN001
    router = APIRouter(dependencies=[READ])

    # Absent filters are left out of the answer, as reports.activity leaves them out.
    @router.get("/v1/reports/activity", tags=["reports"], response_model=Activity, response_model_exclude_none=True,
                responses=REPORT)
    async def activity(request: Request, year: Year, programme: ProgrammeFilter = None,
                       territory: TerritoryFilter = None) -> dict:
        """The headline figures of the year (the bilan), optionally for one programme or territory.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        return await read_report(request, "activity", year,
                                 lambda conn: reports.activity(conn, year, programme, territory), programme, territory)

    @router.get("/v1/reports/activity/breakdown", tags=["reports"], responses=BREAKDOWN_RESPONSES)
    async def breakdown(request: Request, year: Year, by: Dimension, format: FormatChoice = Format.JSON,  # noqa: A002
                        programme: ProgrammeFilter = None, territory: TerritoryFilter = None) -> Response:
        """The figures split by one dimension; rows add up to the headline figures.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        async def compute(conn: asyncpg.Connection) -> tuple[list[dict], dict]:
            return (await reports.breakdown(conn, year, by.value, programme, territory),
                    await reports.activity(conn, year, programme, territory))

        rows, totals = await read_report(request, "breakdown", year, compute, programme, territory,
                                         details={"by": by.value})
        if format is Format.JSON:
            return JSONResponse({"year": year, "by": by.value, "rows": rows, "totals": totals})
        if format is Format.CSV_RAW:
            return download(exports.raw_csv(by.value, rows), exports.CSV_MEDIA_TYPE,
                            f"activity-{year}-by-{by.value}.csv")
        return exports.table_download(exports.french_table(by.value, rows, totals), f"bilan-{year}-{by.value}",
                                      f"Bilan {year}", format is Format.XLSX)

    @router.get("/v1/projections/status", tags=["projections"], response_model=ProjectionStatus,
                responses=responses_for())
    async def status(request: Request) -> dict:
        """Position and lag per partition, newest applied event per topic, generation.
        Scope `reports:read` (no figures: any territory)."""
        async with projection(request) as conn:
            return await projection_state(conn, runtime)

    @router.get("/v1/reports/bilan", tags=["reports"], response_model=BilanDocument, responses=REPORT)
    async def bilan_json(request: Request, year: Year, programme: ProgrammeFilter = None,
                         territory: TerritoryFilter = None) -> dict:
        """The bilan as published: headline figures of the year beside the year before, by
        programme and territory, and its sections (interviews by mode and topic, workshops by
        theme, situations by severity, reason and decision, rehousings by landlord, closures
        by outcome and median duration), each with its definition. The printable page
        `/reports/{year}` renders the same document.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        async def compute(conn: asyncpg.Connection) -> dict:
            return {**await bilan.document(conn, year, programme, territory),
                    "follow_up": await bilan.follow_up(conn, year, programme, territory),
                    "data_as_of": await projection_state(conn, runtime)}

        return await read_report(request, "bilan", year, compute, programme, territory)

    @router.get("/v1/reports/funder", tags=["reports"], response_model=FunderDocument, responses=REPORT)
    async def funder_json(request: Request, year: Year, programme: Annotated[Programme, Query()],
                          territory: TerritoryFilter = None) -> dict:
        """One programme's figures for its funder (FNAVDL/AVDL and the others): households
        accompanied, households rehoused and the rehousing rate, interviews and hours of
        accompaniment, DALO priority and youth rehousings, closures and their median duration;
        each beside the year before, with its definition.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        return await read_report(request, "funder", year,
                                 lambda conn: bilan.funder(conn, year, programme.value, territory),
                                 programme.value, territory)

    @router.get("/v1/reports/follow-up", tags=["reports"], response_model=FollowUpDocument, responses=REPORT)
    async def follow_up(request: Request, year: Year, programme: ProgrammeFilter = None,
                        territory: TerritoryFilter = None) -> dict:
        """The follow-up of veille decisions (the bilan's `follow_up`): actions decided in the
        year and what became of them (completed by their due date, late, cancelled, still
        open), actions overdue on 31 December, the median days from a situation's escalation
        to its first review and from that review to its resolution; beside the year before,
        by programme and by territory (the household's), each with its French definition.
        Scope `reports:read`; a token bound to territories must name one of them in `territory`."""
        return await read_report(request, "follow-up", year,
                                 lambda conn: bilan.follow_up(conn, year, programme, territory), programme, territory)

    @router.get("/v1/reports/data-quality", tags=["reports"], responses=REPORT | {200: {
        "description": "the checks and their counts (JSON), or the table as a file", "model": DataQuality,
        "content": {JSON: {}, "text/csv": {"schema": {"type": "string"}},
                    exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
    async def data_quality(request: Request, on: OnDate = None, programme: ProgrammeFilter = None,
                           territory: TerritoryFilter = None, ids: IdsParam = False,
                           format: TableFormatChoice = TableFormat.JSON) -> Response:  # noqa: A002
        """The records a manager should look at as of `on` (default today): open accompaniments
        with no recent interview, closures with no known outcome, households whose referent
        holds no more interviews, escalated situations never reviewed in a veille meeting;
        each check with its French definition and thresholds (settings ALFI_DATA_QUALITY_*),
        counted in all, by programme and by territory (the household's). Erased households are
        left out. `ids=true` also lists the pseudonymous ids of each check (scope
        `reports:quality` besides `reports:read`: 403 without). Scope `reports:read`; a token
        bound to territories must name one of them in `territory`."""
        day = on or date.today()
        thresholds = quality.Thresholds.of(runtime.settings)
        answer = await read_report(
            request, "data-quality", day, lambda conn: quality.report(conn, day, thresholds, programme, territory, ids),
            programme, territory, needs=QUALITY if ids else None, details={"ids": "true"} if ids else None)
        if format is TableFormat.JSON:
            return JSONResponse(jsonable_encoder(answer))
        name = f"qualite-{day.isoformat()}" + ("-identifiants" if ids else "")
        return exports.table_download(quality.french_table(answer, with_ids=ids), name, f"Qualité {day.isoformat()}",
                                      format is TableFormat.XLSX)

    @router.post("/v1/reports/links", tags=["reports"], status_code=201,
                 responses=responses_for(body=True, answer=(201, ReportLink, "The link, to open in a browser")))
    async def link(request: Request, body: LinkRequest, credentials: Credentials) -> JSONResponse:
        """A short-lived link to the printable pages of one year (`/reports/{year}` and the
        funders' views), for a browser: no token to paste. Opening it sets an HttpOnly cookie
        for that year's pages and drops the secret from the address. The link reads as the
        token that minted it (its territories included, reads only) and ends at its expiry
        (`expires_in_minutes`, at most 24 h) or when that token is revoked or expires.
        Scope `reports:read`."""
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            secret, expires_at = await mint_report_link(conn, credentials.credentials.strip(), body.year,
                                                        timedelta(minutes=body.expires_in_minutes))
            context = request_context(request)
            await audit.record(conn, replace(context.audit_entry(runtime.definition.name, "mint_report_link",
                                                                 audit.ACCEPTED, {}), object_id=str(body.year)))
        url = f"/reports/{body.year}?" + urlencode({"link": secret})
        return JSONResponse({"url": url, "year": body.year, "expires_at": expires_at.isoformat()}, status_code=201)

    everything = APIRouter()
    for part in (router, published_routes(runtime), page_routes(runtime)):
        everything.include_router(part)
    return everything


async def projection_state(conn: asyncpg.Connection, runtime) -> dict:  # noqa: ANN001
    """The generation, each partition's position beside Kafka's end offset, and the newest
    event applied per topic: what `/v1/projections/status` answers and the "données
    arrêtées au" line of the pages says."""
    generation = await generations.current(conn)
    positions = await conn.fetch(
        "SELECT topic, partition, next_offset FROM consumer_positions WHERE consumer = $1"
        " ORDER BY topic, partition", generations.PROJECTOR)
    freshness = await conn.fetch("SELECT topic, last_event_time, applied_at FROM freshness ORDER BY topic")
    ends = await runtime.end_offsets(generations.EVENT_TOPICS)
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




LINK_COOKIE = "alfi_report_link"
PageYear = Annotated[int, Path(ge=1900, le=2100, description="calendar year, e.g. 2023")]
PAGE_HEADERS = {
    # the pages hold figures: never cached, never sent as a referrer, never framed, no script
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:;"
                               " form-action 'self'; frame-ancestors 'none'",
}
LinkParam = Annotated[str | None, Query(max_length=100, description=(
    "a link from `POST /v1/reports/links`: answered with a redirect to the same page without it,"
    " setting an HttpOnly cookie for the year's pages"))]
PAGE = REPORT | {303: {"description": "A link was opened: its cookie is set, the page is at `Location`"},
                 200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}}


link_cookie = APIKeyCookie(name=LINK_COOKIE, auto_error=False, description=(
    "A report link's cookie, set when the link (POST /v1/reports/links) is opened"))
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
LinkCookie = Annotated[str | None, Depends(link_cookie)]


async def page_reader(request: Request, year: int, credentials: HTTPAuthorizationCredentials | None,
                      link: str | None, cookie: str | None) -> Response | None:
    """Who reads a printable page: a bearer token (`reports:read`), or a report link, first
    in the address (answered with a redirect that moves it into a cookie), then in that
    cookie. Sets the request's principal; returns the redirect to answer, if any."""
    if credentials is not None and credentials.credentials:
        await require_scope("reports:read")(request, credentials)
        return None
    secret = link or cookie
    if not secret:
        raise HTTPException(401, "A bearer token or a report link (POST /v1/reports/links) is required",
                            {"WWW-Authenticate": 'Bearer realm="alfi"'})
    principal = await principal_of_link(request.app.state.pool, secret, year)
    if principal is None:
        raise HTTPException(401, f"The report link is unknown, expired, revoked or not for {year}: ask for a new one",
                            {"WWW-Authenticate": 'Bearer realm="alfi"'})
    request.state.principal = principal
    if link is None:
        return None
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "link"])
    redirect = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303,
                                headers=PAGE_HEADERS)
    redirect.set_cookie(LINK_COOKIE, link, max_age=int(LINK_TTL_MAX.total_seconds()), path=f"/reports/{year}",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return redirect


def page_routes(runtime) -> APIRouter:  # noqa: ANN001
    """The printable pages: the bilan and the funders' views, for a browser (page_reader)."""
    router = APIRouter(tags=["pages"])

    @router.get("/reports/{year}", response_class=HTMLResponse, responses=PAGE)
    async def page(request: Request, year: PageYear, programme: ProgrammeFilter = None,
                   territory: TerritoryFilter = None, link: LinkParam = None, credentials: Credentials = None,
                   cookie: LinkCookie = None) -> Response:
        """The bilan of the year as a printable page in French (`/v1/reports/bilan`'s
        document), with filters by programme and territory. A bearer token with
        `reports:read`, or a report link; a token bound to territories must name one of them."""
        if (redirect := await page_reader(request, year, credentials, link, cookie)) is not None:
            return redirect

        chosen = programme and programme.value

        async def compute(conn: asyncpg.Connection) -> str:
            principal = request_principal(request)
            document = {**await bilan.document(conn, year, chosen, territory),
                        "follow_up": await bilan.follow_up(conn, year, chosen, territory)}
            months = await reports.breakdown(conn, year, "month", chosen, territory)
            state = await projection_state(conn, runtime)
            territories = sorted(principal.territories) or await known_territories(conn)
            frozen = await conn.fetchrow(
                f"SELECT frozen_at, sha256, figures->'bilan' AS bilan, figures->'follow_up' AS follow_up"
                f" FROM {generations.BASE}.frozen_years WHERE year = $1", year)
            shown = frozen is not None and frozen["bilan"] is not None and not programme and not territory
            if shown:
                # The whole association's bilan, as frozen; the follow-up too once freeze.py
                # freezes it, else today's, said so on the page.
                document = {**json.loads(frozen["bilan"]), "follow_up": json.loads(frozen["follow_up"])
                            if frozen["follow_up"] else {**document["follow_up"], "not_frozen": True}}
            return render_bilan(document, state, territories, [p.value for p in Programme],
                                [(month_label(r["month"]), r["interviews_held"]) for r in months if r["month"]],
                                frozen and {**frozen, "shown": shown})

        return HTMLResponse(await read_report(request, "page", year, compute, chosen, territory),
                            headers=PAGE_HEADERS)

    @router.get("/reports/{year}/funders/{programme}", response_class=HTMLResponse, responses=PAGE)
    async def funder_page(request: Request, year: PageYear, programme: Annotated[Programme, Path()],
                          territory: TerritoryFilter = None, link: LinkParam = None,
                          credentials: Credentials = None, cookie: LinkCookie = None) -> Response:
        """One programme's funder view as a printable page (`/v1/reports/funder`), read like
        `/reports/{year}`."""
        if (redirect := await page_reader(request, year, credentials, link, cookie)) is not None:
            return redirect

        async def compute(conn: asyncpg.Connection) -> str:
            return render_funder(await bilan.funder(conn, year, programme.value, territory),
                                 await projection_state(conn, runtime))

        return HTMLResponse(await read_report(request, "funder-page", year, compute, programme.value, territory),
                            headers=PAGE_HEADERS)

    @router.get("/reports/{year}/quality", response_class=HTMLResponse, responses=PAGE)
    async def quality_page(request: Request, year: PageYear, on: OnDate = None, programme: ProgrammeFilter = None,
                           territory: TerritoryFilter = None, link: LinkParam = None,
                           credentials: Credentials = None, cookie: LinkCookie = None) -> Response:
        """The data-quality report (`/v1/reports/data-quality`, counts and definitions, no ids)
        as a page for managers, as of `on`, a day of the year (default: 31 December, or today
        during the year); read like `/reports/{year}`."""
        if (redirect := await page_reader(request, year, credentials, link, cookie)) is not None:
            return redirect
        day = on or max(date(year, 1, 1), min(date(year, 12, 31), date.today()))
        if day.year != year:
            raise Invalid(f"on must be a day of {year}", field="on")
        chosen = programme and programme.value

        async def compute(conn: asyncpg.Connection) -> str:
            report = await quality.report(conn, day, quality.Thresholds.of(runtime.settings), chosen, territory)
            territories = sorted(request_principal(request).territories) or await known_territories(conn)
            return render_quality(report, await projection_state(conn, runtime), territories,
                                  [p.value for p in Programme], year)

        return HTMLResponse(await read_report(request, "quality-page", day, compute, chosen, territory),
                            headers=PAGE_HEADERS)

    return router


async def known_territories(conn: asyncpg.Connection) -> list[str]:
    return [r["territory"] for r in await conn.fetch(
        "SELECT territory FROM all_households WHERE territory IS NOT NULL UNION SELECT territory FROM meetings"
        " UNION SELECT territory FROM workshops ORDER BY 1")]


PUBLISH = Authorised("reports:publish")
# What an external audience may see split: not per worker (a pseudonymous person).
Published = StrEnum("Published", {name: name for name in reports.DIMENSIONS if name != "worker"})
PublishedFormatChoice = Annotated[TableFormat, Query(description=(
    "`json` (a withheld count is null); `csv`: the French table, a withheld count written `s`"
    " (secret statistique); `xlsx`: the same as a workbook"))]


def published_routes(runtime) -> APIRouter:  # noqa: ANN001
    router = APIRouter(dependencies=[PUBLISH])

    @router.get("/v1/reports/published", tags=["reports"], responses=REPORT | {200: {
        **BREAKDOWN_RESPONSES[200], "model": PublishedBreakdown,
        "description": "the rows and totals with withheld counts (JSON), or the table as a file"}})
    async def published(request: Request, year: Year, by: Published,
                        format: PublishedFormatChoice = TableFormat.JSON) -> Response:  # noqa: A002
        """The breakdown for an external audience (funders, the public), scope
        `reports:publish`: whole association, no filters, no per-worker split; every count of 1
        to 4 withheld, and enough others with it that no withheld count can be worked out from
        the totals and the other figures (README "Publishing safely", services/stats/suppression.py)."""
        async def compute(conn: asyncpg.Connection) -> tuple[list[dict], dict]:
            return await reports.breakdown(conn, year, by.value), await reports.activity(conn, year)

        rows, totals = await read_report(request, "published", year, compute, None, None, details={"by": by.value})
        rows, totals = suppression.publish(rows, totals, reports.FIGURES)
        if format is TableFormat.JSON:
            return JSONResponse({"year": year, "by": by.value, "threshold": suppression.THRESHOLD,
                                 "rows": rows, "totals": totals})
        return exports.table_download(exports.french_table(by.value, rows, totals, withheld=exports.WITHHELD),
                                      f"bilan-{year}-{by.value}-publie", f"Bilan {year}", format is TableFormat.XLSX)

    return router
