"""Commands: what upstream systems ask intake, casework and veille to record.

The same data arrives over HTTP (the body, with the id from the path where there is one)
or on `alfi.<service>.commands` as `{"command": "<name>", "data": {...}}`. Create commands
take an optional client-chosen id: repeating one with the same id and content is a no-op.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union
from uuid import UUID

from pydantic import AfterValidator, Field

from .privacy import IDENTIFIER_FIELD as ID, PERSONAL, PUBLIC_FIELD as PUBLIC

from .events import (
    ActionCancellation,
    ActionCompletion,
    Closure,
    ContractModel,
    Enrolment,
    Escalation,
    Interview,
    InterviewCancellation,
    Meeting,
    ReferentChange,
    Rehousing,
    Resolution,
    ReviewedSituation,
    Workshop,
    _distinct_situations,
)
from .vocabulary import ActionKind, IsoDate, WorkerId

# ---------------------------------------------------------------- intake


class EnrolHousehold(Enrolment):
    household_id: Annotated[UUID | None, ID] = None


class ChangeReferent(ReferentChange):
    household_id: Annotated[UUID, ID]


class CloseAccompaniment(Closure):
    household_id: Annotated[UUID, ID]


class ErasePersonalData(ContractModel):
    household_id: Annotated[UUID, ID]


# ---------------------------------------------------------------- casework


class RecordInterview(Interview):
    interview_id: Annotated[UUID | None, ID] = None


class CancelInterview(InterviewCancellation):
    interview_id: Annotated[UUID, ID]


class RecordWorkshop(Workshop):
    workshop_id: Annotated[UUID | None, ID] = None


class ConfirmRehousing(Rehousing):
    rehousing_id: Annotated[UUID | None, ID] = None
    # When omitted, taken from the household's enrolment.
    youth: Annotated[bool | None, PERSONAL] = None
    dalo_priority: Annotated[bool | None, PERSONAL] = None


# ---------------------------------------------------------------- veille


class EscalateSituation(Escalation):
    situation_id: Annotated[UUID | None, ID] = None


class ResolveSituation(Resolution):
    situation_id: Annotated[UUID, ID]


class DecidedAction(ContractModel):
    """An action a meeting decides for a situation it reviews."""

    action_id: Annotated[UUID | None, ID] = None
    kind: Annotated[ActionKind, PERSONAL]
    owner_worker_id: Annotated[WorkerId, PERSONAL]
    due_on: Annotated[IsoDate, PUBLIC]


class ReviewWithFollowUp(ReviewedSituation):
    """A reviewed situation as a meeting records it: its decision, the actions it creates
    (none by default) and, optionally, the date from which to review it again."""

    actions: Annotated[list[DecidedAction], Field(max_length=20), PERSONAL] = []
    re_review_on: Annotated[IsoDate | None, PUBLIC] = None


class RecordMeeting(Meeting):
    meeting_id: Annotated[UUID | None, ID] = None
    # The event carries each review's situation and decision; the actions and re-reviews
    # become events of their own (veille.action_decided, situation.re_review_scheduled).
    reviewed: Annotated[
        list[ReviewWithFollowUp], Field(max_length=100), AfterValidator(_distinct_situations), PERSONAL]


class CompleteAction(ActionCompletion):
    action_id: Annotated[UUID, ID]


class CancelAction(ActionCancellation):
    action_id: Annotated[UUID, ID]


# Command name -> (service, data model). The name is what travels in "command".
COMMANDS: dict[str, tuple[str, type[ContractModel]]] = {
    "enrol_household": ("intake", EnrolHousehold),
    "change_referent": ("intake", ChangeReferent),
    "close_accompaniment": ("intake", CloseAccompaniment),
    "erase_personal_data": ("intake", ErasePersonalData),
    "record_interview": ("casework", RecordInterview),
    "cancel_interview": ("casework", CancelInterview),
    "record_workshop": ("casework", RecordWorkshop),
    "confirm_rehousing": ("casework", ConfirmRehousing),
    "escalate_situation": ("veille", EscalateSituation),
    "resolve_situation": ("veille", ResolveSituation),
    "record_meeting": ("veille", RecordMeeting),
    "complete_action": ("veille", CompleteAction),
    "cancel_action": ("veille", CancelAction),
}


def _command_message(name: str, model: type[ContractModel]) -> type[ContractModel]:
    return type(
        f"{model.__name__}Command",
        (ContractModel,),
        {"__annotations__": {"command": Annotated[Literal[name], PUBLIC],  # type: ignore[valid-type]
                             "data": Annotated[model, PUBLIC]}},  # classified field by field
    )


COMMAND_MESSAGES = {name: _command_message(name, model) for name, (_, model) in COMMANDS.items()}

# Commands accepted over HTTP only: an erasure needs its own scope (intake:erase), and a
# command topic carries no caller identity to check it against.
HTTP_ONLY = frozenset({"erase_personal_data"})


def command_message_union(service: str):  # noqa: ANN201 - a typing construct
    """The `{"command", "data"}` message accepted on `alfi.<service>.commands` (all the
    service's commands but those accepted over HTTP only)."""
    members = tuple(COMMAND_MESSAGES[n] for n, (s, _) in COMMANDS.items() if s == service and n not in HTTP_ONLY)
    return Annotated[Union[members], Field(discriminator="command")]  # noqa: UP007
