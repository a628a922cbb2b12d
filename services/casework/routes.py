"""casework's HTTP API: thin routes that parse, authorise and hand over to a handler.

Scope `casework:write` for every route. A token bound to territories acts only on
households, interviews and workshops of those territories (403 `forbidden_territory`);
one bound to a worker records and cancels interviews only under that worker (403
`forbidden_worker`). Every command is audited.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from alfi_contracts.commands import CancelInterview, ConfirmRehousing, RecordInterview, RecordWorkshop
from alfi_contracts.events import InterviewCancellation
from services.common.http import Authorised, run_command
from services.common.problems import responses_for

from .access import scope_of
from .answers import RecordedInterview, RecordedRehousing, RecordedWorkshop

WRITE = Authorised("casework:write")


def routes(runtime) -> APIRouter:  # noqa: ANN001
    runtime.bus.access = scope_of  # what a command touches, for tokens bound to territories or a worker
    router = APIRouter(prefix="/v1", dependencies=[WRITE])

    @router.post("/interviews", status_code=201, tags=["interviews"], responses=responses_for(
        body=True, command=True, answer=(201, RecordedInterview, "Recorded")))
    async def record_interview(request: Request, body: RecordInterview) -> JSONResponse:
        """Record an interview held with a household. Scope `casework:write`, in the household's
        territory; a token bound to a worker records only under its worker_id."""
        return await run_command(request, "record_interview", body)

    @router.post("/interviews/{interview_id}/cancellation", tags=["interviews"], responses=responses_for(
        body=True, lookup=True, command=True, answer=(200, RecordedInterview, "The cancelled interview")))
    async def cancel_interview(request: Request, interview_id: UUID, body: InterviewCancellation) -> JSONResponse:
        """Cancel an interview. Scope `casework:write`, in its household's territory (and its
        worker's, for a token bound to a worker)."""
        return await run_command(request, "cancel_interview",
                                 CancelInterview(interview_id=interview_id, **body.model_dump()))

    @router.post("/workshops", status_code=201, tags=["workshops"], responses=responses_for(
        body=True, command=True, answer=(201, RecordedWorkshop, "Recorded")))
    async def record_workshop(request: Request, body: RecordWorkshop) -> JSONResponse:
        """Record a collective workshop. Scope `casework:write`, in the territory it names."""
        return await run_command(request, "record_workshop", body)

    @router.post("/rehousings", status_code=201, tags=["rehousings"], responses=responses_for(
        body=True, command=True, answer=(201, RecordedRehousing, "Confirmed")))
    async def confirm_rehousing(request: Request, body: ConfirmRehousing) -> JSONResponse:
        """Confirm a household's rehousing. Scope `casework:write`, in the household's territory."""
        return await run_command(request, "confirm_rehousing", body)

    return router
