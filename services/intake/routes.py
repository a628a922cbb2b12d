"""intake's HTTP API: thin routes that parse, authorise and hand over to a handler."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from alfi_contracts.commands import ChangeReferent, CloseAccompaniment, EnrolHousehold, ErasePersonalData
from alfi_contracts.events import Closure, ReferentChange
from services.common.errors import NotFound
from services.common.http import Authorised, run_command

from .handlers import view

WRITE = Authorised("intake:write")
READ = Authorised("intake:read")


def routes(_runtime) -> APIRouter:  # noqa: ANN001
    router = APIRouter(prefix="/v1/households", tags=["households"])

    @router.post("", status_code=201, dependencies=[WRITE])
    async def enrol(request: Request, body: EnrolHousehold) -> JSONResponse:
        """Enrol a household into a programme. Repeat with the same household_id to retry safely."""
        return await run_command(request, "enrol_household", body)

    @router.post("/{household_id}/referent", dependencies=[WRITE])
    async def change_referent(request: Request, household_id: UUID, body: ReferentChange) -> JSONResponse:
        return await run_command(request, "change_referent",
                                 ChangeReferent(household_id=household_id, **body.model_dump()))

    @router.post("/{household_id}/closure", dependencies=[WRITE])
    async def close(request: Request, household_id: UUID, body: Closure) -> JSONResponse:
        return await run_command(request, "close_accompaniment",
                                 CloseAccompaniment(household_id=household_id, **body.model_dump()))

    @router.delete("/{household_id}/personal-data", dependencies=[WRITE])
    async def erase(request: Request, household_id: UUID) -> JSONResponse:
        return await run_command(request, "erase_personal_data", ErasePersonalData(household_id=household_id))

    @router.get("/{household_id}", dependencies=[READ])
    async def get(request: Request, household_id: UUID) -> dict:
        row = await request.app.state.pool.fetchrow(
            "SELECT * FROM households WHERE household_id = $1", household_id)
        if row is None:
            raise NotFound(f"No household {household_id}.")
        return view(row)

    return router
