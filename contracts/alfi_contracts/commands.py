"""Commands: what upstream systems ask intake, casework and veille to record.

The same data arrives over HTTP (the body, with the id from the path where there is one)
or on `alfi.<service>.commands` as `{"command": "<name>", "data": {...}}`. Create commands
take an optional client-chosen id: repeating one with the same id and content is a no-op.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union
from uuid import UUID

from pydantic import Field

from .events import (
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
    Workshop,
)

# ---------------------------------------------------------------- intake


class EnrolHousehold(Enrolment):
    household_id: UUID | None = None


class ChangeReferent(ReferentChange):
    household_id: UUID


class CloseAccompaniment(Closure):
    household_id: UUID


class ErasePersonalData(ContractModel):
    household_id: UUID


# ---------------------------------------------------------------- casework


class RecordInterview(Interview):
    interview_id: UUID | None = None


class CancelInterview(InterviewCancellation):
    interview_id: UUID


class RecordWorkshop(Workshop):
    workshop_id: UUID | None = None


class ConfirmRehousing(Rehousing):
    rehousing_id: UUID | None = None
    # When omitted, taken from the household's enrolment.
    youth: bool | None = None
    dalo_priority: bool | None = None


# ---------------------------------------------------------------- veille


class EscalateSituation(Escalation):
    situation_id: UUID | None = None


class ResolveSituation(Resolution):
    situation_id: UUID


class RecordMeeting(Meeting):
    meeting_id: UUID | None = None


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
}


def _command_message(name: str, model: type[ContractModel]) -> type[ContractModel]:
    return type(
        f"{model.__name__}Command",
        (ContractModel,),
        {"__annotations__": {"command": Literal[name], "data": model}},  # type: ignore[valid-type]
    )


COMMAND_MESSAGES = {name: _command_message(name, model) for name, (_, model) in COMMANDS.items()}


def command_message_union(service: str):  # noqa: ANN201 - a typing construct
    """The `{"command", "data"}` message accepted on `alfi.<service>.commands`."""
    members = tuple(COMMAND_MESSAGES[n] for n, (s, _) in COMMANDS.items() if s == service)
    return Annotated[Union[members], Field(discriminator="command")]  # noqa: UP007
