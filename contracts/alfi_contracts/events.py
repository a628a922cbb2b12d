"""Domain events: the `data` of each CloudEvent, one frozen model per type and version.

Each class names its CloudEvent `type`, its current `version`, the service that emits it,
the field that is its `subject` and the field that is its Kafka key (the household, so a
household's events stay in order; workshops and meetings have no household and are keyed
by their own id).
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .privacy import IDENTIFIER_FIELD as ID, PERSONAL, PUBLIC_FIELD as PUBLIC
from .vocabulary import (
    ActionCancellationReason,
    ActionKind,
    Adults,
    CancellationReason,
    Children,
    ClosureOutcome,
    DurationMinutes,
    InterviewMode,
    InterviewTopic,
    IsoDate,
    Participants,
    Programme,
    ReviewDecision,
    Severity,
    SituationOutcome,
    SituationReason,
    Slug,
    UniqueList,
    WorkerId,
    WorkshopTheme,
)

# What UniqueList checks, said in the JSON Schema too (clients and schemathesis read it).
UNIQUE = {"uniqueItems": True}


class ContractModel(BaseModel):
    """Immutable, and strict about shape: an unknown field is an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventData(ContractModel):
    type: ClassVar[str]
    version: ClassVar[int]
    service: ClassVar[str]
    subject_field: ClassVar[str] = "household_id"
    key_field: ClassVar[str] = "household_id"

    @property
    def subject(self) -> str:
        return str(getattr(self, self.subject_field))

    @property
    def key(self) -> bytes:
        return str(getattr(self, self.key_field)).encode()


# Field sets shared by an event and the command (or HTTP body) that asks for it; the
# event adds the ids the service settles. Defined once here, reused by commands.py.


class Enrolment(ContractModel):
    programme: Annotated[Programme, PUBLIC]
    territory: Annotated[Slug, PUBLIC]
    referent_worker_id: Annotated[WorkerId, PERSONAL]
    enrolled_on: Annotated[IsoDate, PUBLIC]
    youth: Annotated[bool, PERSONAL]
    dalo_priority: Annotated[bool, PERSONAL]
    adults: Annotated[Adults, PERSONAL]
    children: Annotated[Children, PERSONAL]


class ReferentChange(ContractModel):
    referent_worker_id: Annotated[WorkerId, PERSONAL]
    changed_on: Annotated[IsoDate, PUBLIC]


class Closure(ContractModel):
    closed_on: Annotated[IsoDate, PUBLIC]
    outcome: Annotated[ClosureOutcome, PERSONAL]


class Interview(ContractModel):
    household_id: Annotated[UUID, ID]
    worker_id: Annotated[WorkerId, PERSONAL]
    held_on: Annotated[IsoDate, PUBLIC]
    mode: Annotated[InterviewMode, PERSONAL]
    topics: Annotated[list[InterviewTopic], Field(min_length=1, max_length=11, json_schema_extra=UNIQUE), UniqueList,
                      PERSONAL]
    duration_minutes: Annotated[DurationMinutes, PERSONAL]


class InterviewCancellation(ContractModel):
    cancelled_on: Annotated[IsoDate, PUBLIC]
    reason: Annotated[CancellationReason, PERSONAL]


class Workshop(ContractModel):
    residence: Annotated[Slug, PUBLIC]
    territory: Annotated[Slug, PUBLIC]
    theme: Annotated[WorkshopTheme, PUBLIC]
    held_on: Annotated[IsoDate, PUBLIC]
    participants: Annotated[Participants, PUBLIC]


class Rehousing(ContractModel):
    household_id: Annotated[UUID, ID]
    landlord: Annotated[Slug, PERSONAL]
    confirmed_on: Annotated[IsoDate, PUBLIC]


class Escalation(ContractModel):
    household_id: Annotated[UUID, ID]
    escalated_on: Annotated[IsoDate, PUBLIC]
    severity: Annotated[Severity, PERSONAL]
    reasons: Annotated[list[SituationReason], Field(min_length=1, max_length=8, json_schema_extra=UNIQUE), UniqueList,
                       PERSONAL]


class Resolution(ContractModel):
    resolved_on: Annotated[IsoDate, PUBLIC]
    outcome: Annotated[SituationOutcome, PERSONAL]


class ReviewedSituation(ContractModel):
    situation_id: Annotated[UUID, ID]
    decision: Annotated[ReviewDecision, PUBLIC]


def _distinct_situations(reviewed: list[ReviewedSituation]) -> list[ReviewedSituation]:
    if len({r.situation_id for r in reviewed}) != len(reviewed):
        raise ValueError("a meeting reviews each situation once")
    return reviewed


class Meeting(ContractModel):
    held_on: Annotated[IsoDate, PUBLIC]
    territory: Annotated[Slug, PUBLIC]
    # Possibly empty: a practice-sharing meeting reviews no situation and is still a
    # meeting held (DESIGN.md), so it counts in veille_meetings.
    reviewed: Annotated[
        list[ReviewedSituation],
        Field(max_length=100),
        AfterValidator(_distinct_situations),
        PUBLIC,
    ]


class ActionCompletion(ContractModel):
    completed_on: Annotated[IsoDate, PUBLIC]


class ActionCancellation(ContractModel):
    cancelled_on: Annotated[IsoDate, PUBLIC]
    reason: Annotated[ActionCancellationReason, PERSONAL]


# ---------------------------------------------------------------- intake


class HouseholdEnrolled(EventData, Enrolment):
    type = "household.enrolled"
    version = 1
    service = "intake"

    household_id: Annotated[UUID, ID]


class HouseholdReferentChanged(EventData, ReferentChange):
    type = "household.referent_changed"
    version = 1
    service = "intake"

    household_id: Annotated[UUID, ID]


class HouseholdAccompanimentClosed(EventData, Closure):
    type = "household.accompaniment_closed"
    version = 1
    service = "intake"

    household_id: Annotated[UUID, ID]


class HouseholdPersonalDataErased(EventData):
    type = "household.personal_data_erased"
    version = 1
    service = "intake"

    household_id: Annotated[UUID, ID]
    erased_on: Annotated[IsoDate, PUBLIC]


# ---------------------------------------------------------------- casework


class InterviewHeld(EventData, Interview):
    type = "interview.held"
    version = 1
    service = "casework"

    interview_id: Annotated[UUID, ID]


class InterviewCancelled(EventData, InterviewCancellation):
    type = "interview.cancelled"
    version = 1
    service = "casework"

    interview_id: Annotated[UUID, ID]
    household_id: Annotated[UUID, ID]


class WorkshopHeld(EventData, Workshop):
    type = "workshop.held"
    version = 1
    service = "casework"
    subject_field = "workshop_id"
    key_field = "workshop_id"

    workshop_id: Annotated[UUID, ID]


class RehousingConfirmed(EventData, Rehousing):
    type = "rehousing.confirmed"
    version = 1
    service = "casework"

    rehousing_id: Annotated[UUID, ID]
    youth: Annotated[bool, PERSONAL]
    dalo_priority: Annotated[bool, PERSONAL]


# ---------------------------------------------------------------- veille


class SituationEscalated(EventData, Escalation):
    """Version 2: `reasons` is a list. Version 1 carried a single `reason` (upcast)."""

    type = "situation.escalated"
    version = 2
    service = "veille"

    situation_id: Annotated[UUID, ID]


class VeilleMeetingHeld(EventData, Meeting):
    type = "veille.meeting_held"
    version = 1
    service = "veille"
    subject_field = "meeting_id"
    key_field = "meeting_id"

    meeting_id: Annotated[UUID, ID]


class SituationResolved(EventData, Resolution):
    type = "situation.resolved"
    version = 1
    service = "veille"

    situation_id: Annotated[UUID, ID]
    household_id: Annotated[UUID, ID]


class ActionDecided(EventData):
    """A veille meeting decided an action for a reviewed situation: who does it, by when."""

    type = "veille.action_decided"
    version = 1
    service = "veille"

    action_id: Annotated[UUID, ID]
    meeting_id: Annotated[UUID, ID]
    situation_id: Annotated[UUID, ID]
    household_id: Annotated[UUID, ID]
    decided_on: Annotated[IsoDate, PUBLIC]
    kind: Annotated[ActionKind, PERSONAL]
    owner_worker_id: Annotated[WorkerId, PERSONAL]
    due_on: Annotated[IsoDate, PUBLIC]


class ActionCompleted(EventData, ActionCompletion):
    type = "veille.action_completed"
    version = 1
    service = "veille"

    action_id: Annotated[UUID, ID]
    household_id: Annotated[UUID, ID]


class ActionCancelled(EventData, ActionCancellation):
    type = "veille.action_cancelled"
    version = 1
    service = "veille"

    action_id: Annotated[UUID, ID]
    household_id: Annotated[UUID, ID]


class ReReviewScheduled(EventData):
    """A veille meeting asked to see a situation again at a later meeting, from a date."""

    type = "situation.re_review_scheduled"
    version = 1
    service = "veille"

    situation_id: Annotated[UUID, ID]
    household_id: Annotated[UUID, ID]
    meeting_id: Annotated[UUID, ID]
    scheduled_on: Annotated[IsoDate, PUBLIC]
    review_on: Annotated[IsoDate, PUBLIC]


EVENT_TYPES: tuple[type[EventData], ...] = (
    HouseholdEnrolled,
    HouseholdReferentChanged,
    HouseholdAccompanimentClosed,
    HouseholdPersonalDataErased,
    InterviewHeld,
    InterviewCancelled,
    WorkshopHeld,
    RehousingConfirmed,
    SituationEscalated,
    VeilleMeetingHeld,
    SituationResolved,
    ActionDecided,
    ActionCompleted,
    ActionCancelled,
    ReReviewScheduled,
)

EVENTS_BY_TYPE: dict[str, type[EventData]] = {cls.type: cls for cls in EVENT_TYPES}
