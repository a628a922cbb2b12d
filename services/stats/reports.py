"""The report definitions of DESIGN.md, as SQL over the projections.

Every figure is a set of facts: (key, date, programme, territory, worker, landlord,
workshop theme, weight). A figure's value is the sum of `weight` over its facts, one
per distinct key. Filters (programme, territory) apply to the facts first, so a filtered
figure follows the definition literally (e.g. workers with at least one interview of
that programme).

A breakdown must add up to the figure: each distinct key (a household, a worker, a
situation) is attributed to exactly one row, the dimension value of its first qualifying
fact in the year (earliest date, ties broken by the dimension values). Facts a dimension does not apply to
(a workshop has no programme) fall in the row whose value is null.

- households_followed: enrolled on or before 31 Dec Y, not closed before 1 Jan Y; dated
  the later of its enrolment and 1 Jan Y; programme, territory, current referent.
- interviews_held: held in Y, not cancelled; the household's programme and territory,
  the interviewing worker. social_workers_active: the distinct workers of those.
- veille_meetings: meetings held in Y (territory: the meeting's).
  situations_reviewed: distinct situations reviewed in those meetings (the household's
  programme, territory and referent). situations_escalated: escalated in Y.
- workshops_held, workshop_participants: workshops held in Y (territory, theme).
- rehousings, rehousings_dalo, rehousings_youth: confirmed in Y (landlord, and the
  household's programme, territory and referent).

Figures read the all_* views: a generation's rows and what is left of erased households
(the base schema's anon_* tables, under ids that link to no one), so erasing a household
changes no figure, before or after a rebuild (README "Privacy").
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

FIGURES = (
    "households_followed", "interviews_held", "social_workers_active", "veille_meetings",
    "situations_reviewed", "situations_escalated", "workshops_held", "workshop_participants",
    "rehousings", "rehousings_dalo", "rehousings_youth",
)
DIMENSIONS = {
    "programme": "programme",
    "territory": "territory",
    "month": "to_char(fact_date, 'YYYY-MM')",
    "worker": "worker",
    "workshop_theme": "theme",
    "landlord": "landlord",
}

_NONE = "NULL::text"
# figure -> SELECT of (key, fact_date, programme, territory, worker, landlord, theme, weight)
# over the projections for the year [$1, $2].
_FACTS: dict[str, str] = {
    "households_followed": f"""
        SELECT h.household_id::text, greatest(h.enrolled_on, $1), h.programme, h.territory,
               h.referent_worker_id, {_NONE}, {_NONE}, 1
        FROM all_households h
        WHERE h.enrolled_on <= $2 AND (h.closed_on IS NULL OR h.closed_on >= $1)""",
    "interviews_held": f"""
        SELECT i.interview_id::text, i.held_on, h.programme, h.territory, i.worker_id, {_NONE}, {_NONE}, 1
        FROM all_interviews i LEFT JOIN all_households h USING (household_id)
        WHERE i.held_on BETWEEN $1 AND $2 AND NOT i.cancelled""",
    "social_workers_active": f"""
        SELECT i.worker_id, i.held_on, h.programme, h.territory, i.worker_id, {_NONE}, {_NONE}, 1
        FROM all_interviews i LEFT JOIN all_households h USING (household_id)
        WHERE i.held_on BETWEEN $1 AND $2 AND NOT i.cancelled
          AND i.worker_id IS NOT NULL""",  # unknown: sealed and read after its key was deleted
    "veille_meetings": f"""
        SELECT m.meeting_id::text, m.held_on, {_NONE}, m.territory, {_NONE}, {_NONE}, {_NONE}, 1
        FROM meetings m WHERE m.held_on BETWEEN $1 AND $2""",
    "situations_reviewed": f"""
        SELECT r.situation_id::text, r.held_on, h.programme, h.territory, h.referent_worker_id,
               {_NONE}, {_NONE}, 1
        FROM all_reviews r
        LEFT JOIN all_situations s USING (situation_id) LEFT JOIN all_households h ON h.household_id = s.household_id
        WHERE r.held_on BETWEEN $1 AND $2""",
    "situations_escalated": f"""
        SELECT s.situation_id::text, s.escalated_on, h.programme, h.territory, h.referent_worker_id,
               {_NONE}, {_NONE}, 1
        FROM all_situations s LEFT JOIN all_households h USING (household_id)
        WHERE s.escalated_on BETWEEN $1 AND $2""",
    "workshops_held": f"""
        SELECT w.workshop_id::text, w.held_on, {_NONE}, w.territory, {_NONE}, {_NONE}, w.theme, 1
        FROM workshops w WHERE w.held_on BETWEEN $1 AND $2""",
    "workshop_participants": f"""
        SELECT w.workshop_id::text, w.held_on, {_NONE}, w.territory, {_NONE}, {_NONE}, w.theme, w.participants
        FROM workshops w WHERE w.held_on BETWEEN $1 AND $2""",
}
_REHOUSINGS = """
        SELECT r.rehousing_id::text, r.confirmed_on, h.programme, h.territory, h.referent_worker_id,
               r.landlord, NULL::text, 1
        FROM all_rehousings r LEFT JOIN all_households h USING (household_id)
        WHERE r.confirmed_on BETWEEN $1 AND $2"""
_FACTS["rehousings"] = _REHOUSINGS
_FACTS["rehousings_dalo"] = _REHOUSINGS + " AND r.dalo_priority"
_FACTS["rehousings_youth"] = _REHOUSINGS + " AND r.youth"

_COLUMNS = "(key, fact_date, programme, territory, worker, landlord, theme, weight)"


def figures_sql(by: str | None) -> str:
    """One statement: (figure, value, total) rows for the year $1..$2, filters $3 $4."""
    value = DIMENSIONS[by] if by else "NULL::text"
    parts = [
        f"""SELECT '{figure}' AS figure, {value} AS value, sum(weight)::bigint AS total FROM (
              SELECT DISTINCT ON (key) * FROM ({facts}) AS facts {_COLUMNS}
              WHERE ($3::text IS NULL OR programme = $3) AND ($4::text IS NULL OR territory = $4)
              ORDER BY key, fact_date, programme, territory, worker, landlord, theme
            ) AS attributed GROUP BY 2"""
        for figure, facts in _FACTS.items()
    ]
    return "\nUNION ALL\n".join(parts)


async def activity(conn: asyncpg.Connection, year: int, programme: str | None = None,
                   territory: str | None = None) -> dict[str, Any]:
    totals = dict.fromkeys(FIGURES, 0)
    for row in await conn.fetch(figures_sql(None), date(year, 1, 1), date(year, 12, 31), programme, territory):
        totals[row["figure"]] = row["total"]
    return {"year": year, **({"programme": programme} if programme else {}),
            **({"territory": territory} if territory else {}), **totals}


async def breakdown(conn: asyncpg.Connection, year: int, by: str, programme: str | None = None,
                    territory: str | None = None) -> list[dict[str, Any]]:
    rows: dict[str | None, dict[str, int]] = {}
    for row in await conn.fetch(figures_sql(by), date(year, 1, 1), date(year, 12, 31), programme, territory):
        rows.setdefault(row["value"], dict.fromkeys(FIGURES, 0))[row["figure"]] = row["total"]
    ordered = sorted(rows.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return [{by: value, **figures} for value, figures in ordered]
