"""veille's rules that decide, over plain values: no I/O, so they are tested without a
database. The handlers load what a rule needs, call it, then write.

- A meeting reviews known situations, of households not erased, escalated on or before
  its date and not resolved before it (409; an unknown situation is 422).
- An action it decides is due on or after the meeting; a re-review falls after it; an
  action id appears once in a meeting (422, naming the field as a JSON pointer).
- An action is completed or cancelled once, not before it was decided (409).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from uuid import UUID

from alfi_contracts.commands import RecordMeeting

from services.common.errors import Conflict, Invalid


def check_meeting(meeting: RecordMeeting, situations: Mapping[UUID, Mapping[str, Any]]) -> None:
    """Refuse the meeting's first problem. `situations`: the reviewed situations known
    here, by id, with their escalated_on, resolved_on and household's erased_on."""
    for index, review in enumerate(meeting.reviewed):
        field = f"/reviewed/{index}/situation_id"
        situation = situations.get(review.situation_id)
        if situation is None:
            raise Invalid(f"No situation {review.situation_id} has been escalated.", field=field)
        if situation["erased_on"] is not None:
            raise Conflict(f"Situation {review.situation_id}'s household was erased: it cannot be reviewed.",
                           field=field)
        if situation["escalated_on"] > meeting.held_on:
            raise Conflict(f"Situation {review.situation_id} was escalated on {situation['escalated_on']},"
                           f" after the meeting on {meeting.held_on}.", field=field)
        if situation["resolved_on"] is not None and situation["resolved_on"] < meeting.held_on:
            raise Conflict(f"Situation {review.situation_id} was resolved on {situation['resolved_on']},"
                           f" before the meeting on {meeting.held_on}.", field=field)
    check_follow_up(meeting)


def check_follow_up(meeting: RecordMeeting) -> None:
    """The actions and re-reviews a meeting decides: dates after it, each action id once."""
    seen: set[UUID] = set()
    for index, review in enumerate(meeting.reviewed):
        if review.re_review_on is not None and review.re_review_on <= meeting.held_on:
            raise Invalid(f"re_review_on {review.re_review_on} must fall after the meeting on {meeting.held_on}.",
                          field=f"/reviewed/{index}/re_review_on")
        for position, action in enumerate(review.actions):
            pointer = f"/reviewed/{index}/actions/{position}"
            if action.due_on < meeting.held_on:
                raise Invalid(f"due_on {action.due_on} is before the meeting on {meeting.held_on}.",
                              field=f"{pointer}/due_on")
            if action.action_id is not None:
                if action.action_id in seen:
                    raise Invalid(f"Action {action.action_id} appears twice in this meeting.",
                                  field=f"{pointer}/action_id")
                seen.add(action.action_id)


def check_closing(action: Mapping[str, Any], on: date, field: str) -> None:
    """Whether an action (its row) can be completed or cancelled on `on` (named `field`)."""
    if action["completed_on"] is not None:
        raise Conflict(f"Action {action['action_id']} was already completed on {action['completed_on']}.")
    if action["cancelled_on"] is not None:
        raise Conflict(f"Action {action['action_id']} was already cancelled on {action['cancelled_on']}.")
    if on < action["decided_on"]:
        raise Conflict(f"{field} {on} is before the action was decided on {action['decided_on']}.", field=field)
