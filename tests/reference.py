"""A plain in-memory fold of events into the report figures, read straight from
DESIGN.md's definitions: the reference the projection is compared with."""

from __future__ import annotations

from datetime import date

from alfi_contracts import events as ev


def bilan(events: list[ev.EventData], year: int) -> dict[str, int]:
    start, end = date(year, 1, 1), date(year, 12, 31)
    enrolled, closed, held, cancelled = {}, {}, {}, set()
    escalated, meetings, workshops, rehousings = {}, {}, {}, {}
    for data in events:  # order and repetition do not matter to a set of facts
        match data:
            case ev.HouseholdEnrolled():
                enrolled[data.household_id] = data.enrolled_on
            case ev.HouseholdAccompanimentClosed():
                closed[data.household_id] = data.closed_on
            case ev.InterviewHeld():
                held[data.interview_id] = data
            case ev.InterviewCancelled():
                cancelled.add(data.interview_id)
            case ev.SituationEscalated():
                escalated[data.situation_id] = data.escalated_on
            case ev.VeilleMeetingHeld():
                meetings[data.meeting_id] = data
            case ev.WorkshopHeld():
                workshops[data.workshop_id] = data
            case ev.RehousingConfirmed():
                rehousings[data.rehousing_id] = data
    interviews = [i for i in held.values() if start <= i.held_on <= end and i.interview_id not in cancelled]
    year_meetings = [m for m in meetings.values() if start <= m.held_on <= end]
    year_workshops = [w for w in workshops.values() if start <= w.held_on <= end]
    year_rehousings = [r for r in rehousings.values() if start <= r.confirmed_on <= end]
    return {
        "households_followed": sum(
            1 for h, on in enrolled.items() if on <= end and (h not in closed or closed[h] >= start)),
        "interviews_held": len(interviews),
        "social_workers_active": len({i.worker_id for i in interviews}),
        "veille_meetings": len(year_meetings),
        "situations_reviewed": len({r.situation_id for m in year_meetings for r in m.reviewed}),
        "situations_escalated": sum(1 for on in escalated.values() if start <= on <= end),
        "workshops_held": len(year_workshops),
        "workshop_participants": sum(w.participants for w in year_workshops),
        "rehousings": len(year_rehousings),
        "rehousings_dalo": sum(1 for r in year_rehousings if r.dalo_priority),
        "rehousings_youth": sum(1 for r in year_rehousings if r.youth),
    }
