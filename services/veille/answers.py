"""What veille's API answers (OpenAPI only: the routes return the recorded rows, which
these models describe). Personal facts are null once the household is erased."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SITUATION = "3f2e1d0c-9b8a-4765-a432-10fedcba9876"
HOUSEHOLD = "0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10"
MEETING = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
ACTION = "7c6b5a49-3827-4165-8e4d-3c2b1a098f7e"


class RecordedSituation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "situation_id": SITUATION, "household_id": HOUSEHOLD,
        "escalated_on": "2023-05-02", "severity": "serious", "reasons": ["rent_arrears"], "resolved_on": None,
        "outcome": None}]})

    situation_id: UUID
    household_id: UUID
    escalated_on: date
    severity: str | None
    reasons: list[str] | None
    resolved_on: date | None
    outcome: str | None


class ReviewAction(BaseModel):
    """An action a review decided, under the id it was recorded with."""

    action_id: UUID = Field(description="The id sent, or the one given when none was (kept on a replay)")
    kind: str | None
    owner_worker_id: str | None
    due_on: date


class Review(BaseModel):
    situation_id: UUID
    decision: str
    actions: list[ReviewAction] = Field(description="The actions decided for the situation, in the order sent")
    re_review_on: date | None = Field(description="From when the situation is to be reviewed again")


class RecordedMeeting(BaseModel):
    """A meeting and the situations it reviewed (none for a practice-sharing meeting), with
    the actions and re-reviews it decided."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "meeting_id": MEETING, "held_on": "2023-05-10", "territory": "bretagne",
        "reviewed": [{"situation_id": SITUATION, "decision": "refer_partner", "re_review_on": "2023-07-05",
                      "actions": [{"action_id": ACTION, "kind": "home_visit", "owner_worker_id": "sw-017",
                                   "due_on": "2023-05-31"}]}]}]})

    meeting_id: UUID
    held_on: date
    territory: str
    reviewed: list[Review]


class ActionFacts(BaseModel):
    """What an action is: the situation it follows up, what to do, who, by when."""

    action_id: UUID
    situation_id: UUID
    household_id: UUID
    kind: str | None
    owner_worker_id: str | None
    decided_on: date
    due_on: date


class RecordedAction(ActionFacts):
    """An action a meeting decided, after its completion or cancellation."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "action_id": ACTION, "meeting_id": MEETING, "situation_id": SITUATION, "household_id": HOUSEHOLD,
        "kind": "home_visit", "owner_worker_id": "sw-017", "decided_on": "2023-05-10", "due_on": "2023-05-31",
        "completed_on": "2023-05-29", "cancelled_on": None, "cancel_reason": None}]})

    meeting_id: UUID
    completed_on: date | None
    cancelled_on: date | None
    cancel_reason: str | None


class UnreviewedSituation(BaseModel):
    situation_id: UUID
    household_id: UUID
    escalated_on: date
    waiting_days: int = Field(description="Days from the escalation to the agenda's date")


class DueReReview(BaseModel):
    situation_id: UUID
    household_id: UUID
    re_review_on: date
    days_overdue: int = Field(description="Days from re_review_on to the agenda's date; negative: due in that many")
    overdue: bool


class OpenAction(ActionFacts):
    waiting_days: int = Field(description="Days from the meeting that decided it to the agenda's date")
    days_overdue: int = Field(description="Days from due_on to the agenda's date; negative: due in that many")
    overdue: bool


class Agenda(BaseModel):
    """A territory's veille agenda as of a date, each part most urgent first (services/veille/agenda.py)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "territory": "bretagne", "on": "2023-06-01", "horizon_days": 28,
        "unreviewed_situations": [{"situation_id": "9e8d7c6b-5a49-4382-a716-0f1e2d3c4b5a",
                                   "household_id": "2c1b0a9f-8e7d-4c6b-a5f4-e3d2c1b0a9f8",
                                   "escalated_on": "2023-05-20", "waiting_days": 12}],
        "re_reviews": [{"situation_id": "5d4c3b2a-1908-4f7e-8d6c-5b4a39281706", "household_id": HOUSEHOLD,
                        "re_review_on": "2023-06-15", "days_overdue": -14, "overdue": False}],
        "actions": [{"action_id": ACTION, "situation_id": SITUATION, "household_id": HOUSEHOLD,
                     "kind": "home_visit", "owner_worker_id": "sw-017", "decided_on": "2023-05-10",
                     "due_on": "2023-05-31", "waiting_days": 22, "days_overdue": 1, "overdue": True}]}]})

    territory: str
    on: date
    horizon_days: int
    unreviewed_situations: list[UnreviewedSituation]
    re_reviews: list[DueReReview]
    actions: list[OpenAction]
