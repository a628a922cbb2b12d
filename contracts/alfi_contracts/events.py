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

from .vocabulary import (
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
    programme: Programme
    territory: Slug
    referent_worker_id: WorkerId
    enrolled_on: IsoDate
    youth: bool
    dalo_priority: bool
    adults: Adults
    children: Children


class ReferentChange(ContractModel):
    referent_worker_id: WorkerId
    changed_on: IsoDate


class Closure(ContractModel):
    closed_on: IsoDate
    outcome: ClosureOutcome


class Interview(ContractModel):
    household_id: UUID
    worker_id: WorkerId
    held_on: IsoDate
    mode: InterviewMode
    topics: Annotated[list[InterviewTopic], Field(min_length=1, max_length=11), UniqueList]
    duration_minutes: DurationMinutes


class InterviewCancellation(ContractModel):
    cancelled_on: IsoDate
    reason: CancellationReason


class Workshop(ContractModel):
    residence: Slug
    territory: Slug
    theme: WorkshopTheme
    held_on: IsoDate
    participants: Participants


class Rehousing(ContractModel):
    household_id: UUID
    landlord: Slug
    confirmed_on: IsoDate


class Escalation(ContractModel):
    household_id: UUID
    escalated_on: IsoDate
    severity: Severity
    reasons: Annotated[list[SituationReason], Field(min_length=1, max_length=8), UniqueList]


class Resolution(ContractModel):
    resolved_on: IsoDate
    outcome: SituationOutcome


class ReviewedSituation(ContractModel):
    situation_id: UUID
    decision: ReviewDecision


def _distinct_situations(reviewed: list[ReviewedSituation]) -> list[ReviewedSituation]:
    if len({r.situation_id for r in reviewed}) != len(reviewed):
        raise ValueError("a meeting reviews each situation once")
    return reviewed


class Meeting(ContractModel):
    held_on: IsoDate
    territory: Slug
    reviewed: Annotated[
        list[ReviewedSituation],
        Field(min_length=1, max_length=100),
        AfterValidator(_distinct_situations),
    ]


# ---------------------------------------------------------------- intake


class HouseholdEnrolled(EventData, Enrolment):
    type = "household.enrolled"
    version = 1
    service = "intake"

    household_id: UUID


class HouseholdReferentChanged(EventData, ReferentChange):
    type = "household.referent_changed"
    version = 1
    service = "intake"

    household_id: UUID


class HouseholdAccompanimentClosed(EventData, Closure):
    type = "household.accompaniment_closed"
    version = 1
    service = "intake"

    household_id: UUID


class HouseholdPersonalDataErased(EventData):
    type = "household.personal_data_erased"
    version = 1
    service = "intake"

    household_id: UUID
    erased_on: IsoDate


# ---------------------------------------------------------------- casework


class InterviewHeld(EventData, Interview):
    type = "interview.held"
    version = 1
    service = "casework"

    interview_id: UUID


class InterviewCancelled(EventData, InterviewCancellation):
    type = "interview.cancelled"
    version = 1
    service = "casework"

    interview_id: UUID
    household_id: UUID


class WorkshopHeld(EventData, Workshop):
    type = "workshop.held"
    version = 1
    service = "casework"
    subject_field = "workshop_id"
    key_field = "workshop_id"

    workshop_id: UUID


class RehousingConfirmed(EventData, Rehousing):
    type = "rehousing.confirmed"
    version = 1
    service = "casework"

    rehousing_id: UUID
    youth: bool
    dalo_priority: bool


# ---------------------------------------------------------------- veille


class SituationEscalated(EventData, Escalation):
    """Version 2: `reasons` is a list. Version 1 carried a single `reason` (upcast)."""

    type = "situation.escalated"
    version = 2
    service = "veille"

    situation_id: UUID


class VeilleMeetingHeld(EventData, Meeting):
    type = "veille.meeting_held"
    version = 1
    service = "veille"
    subject_field = "meeting_id"
    key_field = "meeting_id"

    meeting_id: UUID


class SituationResolved(EventData, Resolution):
    type = "situation.resolved"
    version = 1
    service = "veille"

    situation_id: UUID
    household_id: UUID


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
)

EVENTS_BY_TYPE: dict[str, type[EventData]] = {cls.type: cls for cls in EVENT_TYPES}
