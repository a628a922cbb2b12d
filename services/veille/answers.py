"""What veille's API answers when a command is recorded (OpenAPI only: the routes return
the recorded row, which these models describe). Personal facts are null once the
household is erased."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict

SITUATION = "3f2e1d0c-9b8a-4765-a432-10fedcba9876"


class RecordedSituation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "situation_id": SITUATION, "household_id": "0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10",
        "escalated_on": "2023-05-02", "severity": "serious", "reasons": ["rent_arrears"], "resolved_on": None,
        "outcome": None}]})

    situation_id: UUID
    household_id: UUID
    escalated_on: date
    severity: str | None
    reasons: list[str] | None
    resolved_on: date | None
    outcome: str | None


class Review(BaseModel):
    situation_id: UUID
    decision: str


class RecordedMeeting(BaseModel):
    """A meeting and the situations it reviewed (none for a practice-sharing meeting)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "meeting_id": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d", "held_on": "2023-05-10", "territory": "bretagne",
        "reviewed": [{"situation_id": SITUATION, "decision": "refer_partner"}]}]})

    meeting_id: UUID
    held_on: date
    territory: str
    reviewed: list[Review]
