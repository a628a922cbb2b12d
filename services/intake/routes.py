"""intake's HTTP API: thin routes that parse, authorise and hand over to a handler.

Scopes: `intake:write` for the commands, `intake:erase` for erasure, `intake:read` for
reading a household. A token bound to territories acts on and reads only households of
those territories (403 `forbidden_territory`); every command and read is audited.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from alfi_contracts.commands import ChangeReferent, CloseAccompaniment, EnrolHousehold, ErasePersonalData
from alfi_contracts.events import Closure, ReferentChange
from services.common.access import Scope, authorise
from services.common.errors import NotFound
from services.common.http import Authorised, audited_read, request_principal, run_command
from services.common.problems import responses_for

from .access import scope_of
from .answers import Household
from .handlers import view

WRITE = Authorised("intake:write")
ERASE = Authorised("intake:erase")
READ = Authorised("intake:read")
RECORDED = (201, Household, "Enrolled")
AFTER = (200, Household, "The household after the command")


def routes(runtime) -> APIRouter:  # noqa: ANN001
    runtime.bus.access = scope_of  # what a command touches, for tokens bound to territories
    router = APIRouter(prefix="/v1/households", tags=["households"])

    @router.post("", status_code=201, dependencies=[WRITE],
                 responses=responses_for(body=True, command=True, answer=RECORDED))
    async def enrol(request: Request, body: EnrolHousehold) -> JSONResponse:
        """Enrol a household into a programme. Repeat with the same household_id to retry safely.
        Scope `intake:write`; a token bound to territories enrols only in them."""
        return await run_command(request, "enrol_household", body)

    @router.post("/{household_id}/referent", dependencies=[WRITE],
                 responses=responses_for(body=True, lookup=True, command=True, answer=AFTER))
    async def change_referent(request: Request, household_id: UUID, body: ReferentChange) -> JSONResponse:
        """Change the household's referent worker. Scope `intake:write`, in the household's territory."""
        return await run_command(request, "change_referent",
                                 ChangeReferent(household_id=household_id, **body.model_dump()))

    @router.post("/{household_id}/closure", dependencies=[WRITE],
                 responses=responses_for(body=True, lookup=True, command=True, answer=AFTER))
    async def close(request: Request, household_id: UUID, body: Closure) -> JSONResponse:
        """Close the household's accompaniment. Scope `intake:write`, in the household's territory."""
        return await run_command(request, "close_accompaniment",
                                 CloseAccompaniment(household_id=household_id, **body.model_dump()))

    @router.delete("/{household_id}/personal-data", dependencies=[ERASE],
                   responses=responses_for(params=True, lookup=True, command=True, answer=AFTER))
    async def erase(request: Request, household_id: UUID) -> JSONResponse:
        """Erase the household's personal data (figures are kept). Scope `intake:erase` (not
        `intake:write`), in the household's territory."""
        return await run_command(request, "erase_personal_data", ErasePersonalData(household_id=household_id))

    @router.get("/{household_id}", dependencies=[READ], response_model=Household,
                responses=responses_for(params=True, lookup=True))
    async def get(request: Request, household_id: UUID) -> dict:
        """The household as intake knows it. Scope `intake:read`, in the household's territory;
        every read is audited."""
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            async def read() -> dict:
                row = await conn.fetchrow("SELECT * FROM households WHERE household_id = $1", household_id)
                if row is None:
                    raise NotFound(f"No household {household_id}.")
                authorise(request_principal(request), Scope(row["territory"]))
                return view(row)

            return await audited_read(request, "read_household", read, household_id=household_id, conn=conn)

    return router
