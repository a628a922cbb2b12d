"""What intake's API answers when it succeeds (OpenAPI only: the routes return the
handlers' views, which these models describe)."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class Household(BaseModel):
    """The household as intake knows it; after erasure only its public facts remain."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "household_id": "0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10", "programme": "pension_de_famille",
        "territory": "bretagne", "referent_worker_id": "w-042", "enrolled_on": "2023-02-01", "youth": False,
        "dalo_priority": True, "adults": 1, "children": 2, "closed_on": None, "closure_outcome": None,
        "erased_on": None}]})

    household_id: UUID
    programme: str
    territory: str
    referent_worker_id: str | None
    enrolled_on: date
    youth: bool | None
    dalo_priority: bool | None
    adults: int | None
    children: int | None
    closed_on: date | None
    closure_outcome: str | None
    erased_on: date | None
