"""What casework's API answers when a command is recorded (OpenAPI only: the routes
return the recorded row, which these models describe). Personal facts are null once the
household is erased."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict

HOUSEHOLD = "0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10"


class RecordedInterview(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "interview_id": "5c1f0e4e-3b7a-4d55-8a8e-1f6f3b9d2c01", "household_id": HOUSEHOLD, "worker_id": "w-042",
        "held_on": "2023-03-14", "mode": "home_visit", "topics": ["budget", "housing"], "duration_minutes": 45,
        "cancelled_on": None, "cancellation_reason": None}]})

    interview_id: UUID
    household_id: UUID
    worker_id: str | None
    held_on: date
    mode: str | None
    topics: list[str] | None
    duration_minutes: int | None
    cancelled_on: date | None
    cancellation_reason: str | None


class RecordedWorkshop(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "workshop_id": "7d2a9b10-6c3e-4f8a-b1d2-3e4f5a6b7c8d", "residence": "les-tilleuls", "territory": "bretagne",
        "theme": "budget", "held_on": "2023-04-06", "participants": 9}]})

    workshop_id: UUID
    residence: str
    territory: str
    theme: str
    held_on: date
    participants: int


class RecordedRehousing(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rehousing_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "household_id": HOUSEHOLD,
        "landlord": "antin-residences", "confirmed_on": "2023-09-01", "youth": False, "dalo_priority": True}]})

    rehousing_id: UUID
    household_id: UUID
    landlord: str | None
    confirmed_on: date
    youth: bool | None
    dalo_priority: bool | None
