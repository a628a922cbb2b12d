"""veille's HTTP API: thin routes that parse, authorise and hand over to a handler.

Scope `veille:write` for every route. A token bound to territories acts only on
households, situations and meetings of those territories (403 `forbidden_territory`).
Every command is audited.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from alfi_contracts.commands import EscalateSituation, RecordMeeting, ResolveSituation
from alfi_contracts.events import Resolution
from services.common.http import Authorised, run_command
from services.common.problems import responses_for

from .access import scope_of
from .answers import RecordedMeeting, RecordedSituation

WRITE = Authorised("veille:write")


def routes(runtime) -> APIRouter:  # noqa: ANN001
    runtime.bus.access = scope_of  # what a command touches, for tokens bound to territories
    router = APIRouter(prefix="/v1", dependencies=[WRITE])

    @router.post("/situations", status_code=201, tags=["situations"], responses=responses_for(
        body=True, command=True, answer=(201, RecordedSituation, "Escalated")))
    async def escalate(request: Request, body: EscalateSituation) -> JSONResponse:
        """Escalate a household's delicate situation. Scope `veille:write`, in the household's territory."""
        return await run_command(request, "escalate_situation", body)

    @router.post("/situations/{situation_id}/resolution", tags=["situations"], responses=responses_for(
        body=True, lookup=True, command=True, answer=(200, RecordedSituation, "The resolved situation")))
    async def resolve(request: Request, situation_id: UUID, body: Resolution) -> JSONResponse:
        """Resolve a situation. Scope `veille:write`, in its household's territory."""
        return await run_command(request, "resolve_situation",
                                 ResolveSituation(situation_id=situation_id, **body.model_dump()))

    @router.post("/meetings", status_code=201, tags=["meetings"], responses=responses_for(
        body=True, command=True, answer=(201, RecordedMeeting, "Recorded")))
    async def record_meeting(request: Request, body: RecordMeeting) -> JSONResponse:
        """Record a veille meeting and its reviews. Scope `veille:write`, in the territory it names."""
        return await run_command(request, "record_meeting", body)

    return router
