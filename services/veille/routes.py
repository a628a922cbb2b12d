"""veille's HTTP API: thin routes that parse, authorise and hand over to a handler.

Scope `veille:write` for the commands, `veille:read` for the agenda. A token bound to
territories acts only on households, situations, meetings and actions of those
territories, and reads only their agendas (403 `forbidden_territory`). Every command and
every read of an agenda is audited.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from alfi_contracts.commands import CancelAction, CompleteAction, EscalateSituation, RecordMeeting, ResolveSituation
from alfi_contracts.events import ActionCancellation, ActionCompletion, Resolution
from alfi_contracts.vocabulary import IsoDate, Slug
from services.common.access import authorise_report
from services.common.exports import CSV_MEDIA_TYPE, download, french_csv
from services.common.http import Authorised, audited_read, request_principal, run_command
from services.common.problems import JSON, responses_for

from . import agenda as agendas
from .access import scope_of
from .answers import Agenda, RecordedAction, RecordedMeeting, RecordedSituation

WRITE = Authorised("veille:write")
READ = Authorised("veille:read")
ACTION_AFTER = (200, RecordedAction, "The action after the command")


class AgendaFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


AGENDA_RESPONSES = responses_for(params=True) | {200: {
    "description": "The agenda (JSON), or as a French CSV to download", "model": Agenda,
    "content": {JSON: {}, "text/csv": {"schema": {"type": "string"}}}}}


def routes(runtime) -> APIRouter:  # noqa: ANN001
    runtime.bus.access = scope_of  # what a command touches, for tokens bound to territories
    router = APIRouter(prefix="/v1")

    @router.post("/situations", status_code=201, tags=["situations"], dependencies=[WRITE], responses=responses_for(
        body=True, command=True, answer=(201, RecordedSituation, "Escalated")))
    async def escalate(request: Request, body: EscalateSituation) -> JSONResponse:
        """Escalate a household's delicate situation. Scope `veille:write`, in the household's territory."""
        return await run_command(request, "escalate_situation", body)

    @router.post("/situations/{situation_id}/resolution", tags=["situations"], dependencies=[WRITE],
                 responses=responses_for(body=True, lookup=True, command=True,
                                         answer=(200, RecordedSituation, "The resolved situation")))
    async def resolve(request: Request, situation_id: UUID, body: Resolution) -> JSONResponse:
        """Resolve a situation. Scope `veille:write`, in its household's territory."""
        return await run_command(request, "resolve_situation",
                                 ResolveSituation(situation_id=situation_id, **body.model_dump()))

    @router.post("/meetings", status_code=201, tags=["meetings"], dependencies=[WRITE], responses=responses_for(
        body=True, command=True, answer=(201, RecordedMeeting, "Recorded")))
    async def record_meeting(request: Request, body: RecordMeeting) -> JSONResponse:
        """Record a veille meeting, its reviews and the actions and re-reviews they decide.
        Repeat with the same meeting_id to retry safely (the answer names the actions' ids).
        Scope `veille:write`, in the territory it names and those of the reviewed situations."""
        return await run_command(request, "record_meeting", body)

    @router.post("/actions/{action_id}/completion", tags=["actions"], dependencies=[WRITE],
                 responses=responses_for(body=True, lookup=True, command=True, answer=ACTION_AFTER))
    async def complete(request: Request, action_id: UUID, body: ActionCompletion) -> JSONResponse:
        """Complete an action a meeting decided (once, not before it was decided).
        Scope `veille:write`, in its household's territory."""
        return await run_command(request, "complete_action",
                                 CompleteAction(action_id=action_id, **body.model_dump()))

    @router.post("/actions/{action_id}/cancellation", tags=["actions"], dependencies=[WRITE],
                 responses=responses_for(body=True, lookup=True, command=True, answer=ACTION_AFTER))
    async def cancel(request: Request, action_id: UUID, body: ActionCancellation) -> JSONResponse:
        """Cancel an action a meeting decided (once, not before it was decided).
        Scope `veille:write`, in its household's territory."""
        return await run_command(request, "cancel_action", CancelAction(action_id=action_id, **body.model_dump()))

    @router.get("/veille/agenda", tags=["agenda"], dependencies=[READ], responses=AGENDA_RESPONSES)
    async def agenda(request: Request, territory: Annotated[Slug, Query(description="the territory's slug")],
                     on: Annotated[IsoDate, Query(description="the agenda's date, YYYY-MM-DD")],
                     horizon_days: Annotated[int, Query(ge=0, le=366, description=(
                         "how far ahead of `on` re-reviews and actions are shown"))] = 28,
                     format: Annotated[AgendaFormat, Query(description=(  # noqa: A002
                         "`json`; `csv`: French table for French Excel (`;`, UTF-8 BOM, CRLF)"))] = AgendaFormat.JSON,
                     ) -> Response:
        """What a meeting's chair opens before a meeting: the territory's situations never
        reviewed, re-reviews and actions due within `horizon_days`, most urgent first
        (definitions: services/veille/agenda.py). Scope `veille:read`; a token bound to
        territories asks for one of them. Every read is audited."""
        async with request.app.state.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            async def read() -> dict:
                authorise_report(request_principal(request), territory)
                return await agendas.agenda(conn, territory, on, horizon_days)

            answer = await audited_read(request, "read_agenda", read, conn=conn,
                                        object_id=f"agenda:{territory}:{on}:horizon_days={horizon_days}")
        if format is AgendaFormat.CSV:
            return download(french_csv(agendas.french_table(answer)), CSV_MEDIA_TYPE,
                            f"agenda-veille-{territory}-{on}.csv")
        return JSONResponse(Agenda.model_validate(answer).model_dump(mode="json"))

    return router
