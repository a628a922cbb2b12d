"""veille's HTTP API: thin routes that parse, authorise and hand over to a handler."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from alfi_contracts.commands import EscalateSituation, RecordMeeting, ResolveSituation
from alfi_contracts.events import Resolution
from services.common.http import Authorised, run_command

WRITE = Authorised("veille:write")


def routes(_runtime) -> APIRouter:  # noqa: ANN001
    router = APIRouter(prefix="/v1", dependencies=[WRITE])

    @router.post("/situations", status_code=201, tags=["situations"])
    async def escalate(request: Request, body: EscalateSituation) -> JSONResponse:
        return await run_command(request, "escalate_situation", body)

    @router.post("/situations/{situation_id}/resolution", tags=["situations"])
    async def resolve(request: Request, situation_id: UUID, body: Resolution) -> JSONResponse:
        return await run_command(request, "resolve_situation",
                                 ResolveSituation(situation_id=situation_id, **body.model_dump()))

    @router.post("/meetings", status_code=201, tags=["meetings"])
    async def record_meeting(request: Request, body: RecordMeeting) -> JSONResponse:
        return await run_command(request, "record_meeting", body)

    return router
