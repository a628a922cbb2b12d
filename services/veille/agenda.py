"""The veille agenda: what a meeting's chair opens before a meeting, for one territory
(its households, from the replica; erased ones are left out: nothing more can be
recorded for them), as of a date `on`, looking `horizon_days` ahead. Three parts, each
most urgent first:

- unreviewed situations: escalated on or before `on`, not resolved by `on` (resolved_on
  after `on` or never), and reviewed in no meeting held on or before `on`;
  `waiting_days` = on - escalated_on.
- re-reviews: a situation's re-review is the one asked by the latest meeting held on or
  before `on` that asked one. It is on the agenda when the situation is not resolved by
  `on`, re_review_on <= on + horizon_days, and no meeting held from re_review_on to `on`
  reviewed the situation; `days_overdue` = on - re_review_on (negative: due in that many
  days), overdue when re_review_on is before `on`.
- actions open at `on`: decided on or before `on`, neither completed nor cancelled on or
  before `on`, due_on <= on + horizon_days; `waiting_days` = on - decided_on,
  `days_overdue` = on - due_on, overdue when due_on is before `on`.

Ids only (situation, household, action, worker): no other personal data but the kind of
an action, which the chair needs to follow it up.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from . import labels

UNREVIEWED = """
SELECT s.situation_id, s.household_id, s.escalated_on, $2 - s.escalated_on AS waiting_days
FROM situations s JOIN households h USING (household_id)
WHERE h.territory = $1 AND h.erased_on IS NULL
  AND s.escalated_on <= $2 AND (s.resolved_on IS NULL OR s.resolved_on > $2)
  AND NOT EXISTS (SELECT 1 FROM reviews r JOIN meetings m USING (meeting_id)
                  WHERE r.situation_id = s.situation_id AND m.held_on <= $2)
ORDER BY s.escalated_on, s.situation_id
"""

RE_REVIEWS = """
WITH asked AS (
    SELECT DISTINCT ON (s.situation_id) s.situation_id, s.household_id, r.re_review_on
    FROM reviews r JOIN meetings m USING (meeting_id) JOIN situations s USING (situation_id)
         JOIN households h USING (household_id)
    WHERE h.territory = $1 AND h.erased_on IS NULL AND r.re_review_on IS NOT NULL AND m.held_on <= $2
      AND (s.resolved_on IS NULL OR s.resolved_on > $2)
    ORDER BY s.situation_id, m.held_on DESC, r.re_review_on DESC
)
SELECT a.situation_id, a.household_id, a.re_review_on, $2 - a.re_review_on AS days_overdue,
       a.re_review_on < $2 AS overdue
FROM asked a
WHERE a.re_review_on <= $2 + $3::int
  AND NOT EXISTS (SELECT 1 FROM reviews r JOIN meetings m USING (meeting_id)
                  WHERE r.situation_id = a.situation_id AND m.held_on BETWEEN a.re_review_on AND $2)
ORDER BY a.re_review_on, a.situation_id
"""

ACTIONS = """
SELECT a.action_id, a.situation_id, a.household_id, a.kind, a.owner_worker_id, a.decided_on, a.due_on,
       $2 - a.decided_on AS waiting_days, $2 - a.due_on AS days_overdue, a.due_on < $2 AS overdue
FROM actions a JOIN households h USING (household_id)
WHERE h.territory = $1 AND h.erased_on IS NULL
  AND a.decided_on <= $2 AND a.due_on <= $2 + $3::int
  AND (a.completed_on IS NULL OR a.completed_on > $2) AND (a.cancelled_on IS NULL OR a.cancelled_on > $2)
ORDER BY a.due_on, a.decided_on, a.action_id
"""

SECTIONS = {"unreviewed_situations": UNREVIEWED, "re_reviews": RE_REVIEWS, "actions": ACTIONS}


async def agenda(conn: asyncpg.Connection, territory: str, on: date, horizon_days: int) -> dict[str, Any]:
    """The territory's agenda as of `on` (one snapshot when `conn` is in a repeatable-read
    transaction)."""
    answer: dict[str, Any] = {"territory": territory, "on": on, "horizon_days": horizon_days}
    for section, query in SECTIONS.items():
        # Each query uses the parameters it names: UNREVIEWED has no horizon.
        params = (territory, on) if section == "unreviewed_situations" else (territory, on, horizon_days)
        answer[section] = [dict(row) for row in await conn.fetch(query, *params)]
    return answer


def french_table(agenda: dict[str, Any]) -> list[list[str | int | None]]:
    """The agenda as one French table: a header, then each part's items in order, a
    column empty where it does not apply to the item."""
    def cell(field: str, value: Any) -> str | int | None:
        if field == "kind":
            return labels.ACTION_KIND_LABELS.get(value, labels.UNKNOWN)
        if isinstance(value, bool):
            return labels.YES if value else labels.NO
        if isinstance(value, date):
            return labels.date_label(value)
        return value

    rows = [[header for _, header in labels.AGENDA_COLUMNS]]
    for section, title in labels.SECTION_LABELS.items():
        for item in agenda[section]:
            rows.append([title, *(cell(f, item[f]) if f in item else None for f, _ in labels.AGENDA_COLUMNS[1:])])
    return rows
