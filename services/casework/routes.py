"""casework's HTTP API: thin routes that parse, authorise and hand over to a handler."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from alfi_contracts.commands import CancelInterview, ConfirmRehousing, RecordInterview, RecordWorkshop
from alfi_contracts.events import InterviewCancellation
from services.common.http import Authorised, run_command

WRITE = Authorised("casework:write")


def routes(_runtime) -> APIRouter:  # noqa: ANN001
    router = APIRouter(prefix="/v1", dependencies=[WRITE])

    @router.post("/interviews", status_code=201, tags=["interviews"])
    async def record_interview(request: Request, body: RecordInterview) -> JSONResponse:
        return await run_command(request, "record_interview", body)

    @router.post("/interviews/{interview_id}/cancellation", tags=["interviews"])
    async def cancel_interview(request: Request, interview_id: UUID, body: InterviewCancellation) -> JSONResponse:
        return await run_command(request, "cancel_interview",
                                 CancelInterview(interview_id=interview_id, **body.model_dump()))

    @router.post("/workshops", status_code=201, tags=["workshops"])
    async def record_workshop(request: Request, body: RecordWorkshop) -> JSONResponse:
        return await run_command(request, "record_workshop", body)

    @router.post("/rehousings", status_code=201, tags=["rehousings"])
    async def confirm_rehousing(request: Request, body: ConfirmRehousing) -> JSONResponse:
        return await run_command(request, "confirm_rehousing", body)

    return router
