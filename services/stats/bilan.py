"""The bilan as the association publishes it: the headline figures of year N beside N-1,
the year by programme and by territory, and the sections the headline figures do not
break down (interviews by mode and topic, workshops by theme, situations by severity,
reason and decision, rehousings by landlord, closures by outcome with their median
duration); the follow-up of veille decisions (`follow_up`); and the funders' view of one
programme. Dicts, served as JSON and rendered as the printable page (page.py).

`follow_up` is a part of its own beside `document`, not inside it: freeze.py hashes
`document` for every frozen year and recomputes it to verify one, so whatever it holds
must not change for the years frozen before.

Every section counts over the year with the report's filters applied to the household
(programme, territory), as DESIGN.md's figures do, and reads the all_* views (a
generation plus the residue of erased households, README "Privacy"). A personal fact
read after its household's key was deleted, before stats kept it, is `null` (label
"Non renseigné"): it still counts in the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from . import reports
from .labels import FIGURE_LABELS

TOTAL_KEY = "*"
_HOUSEHOLD = "($3::text IS NULL OR h.programme = $3) AND ($4::text IS NULL OR h.territory = $4)"
_INTERVIEWS = f"""
    FROM all_interviews i
    LEFT JOIN all_interview_details d ON d.interview_id = i.interview_id
    LEFT JOIN all_households h ON h.household_id = i.household_id
    WHERE i.held_on BETWEEN $1 AND $2 AND NOT i.cancelled AND {_HOUSEHOLD}"""
_SITUATIONS = f"""
    FROM all_situations s
    LEFT JOIN all_situation_details d ON d.situation_id = s.situation_id
    LEFT JOIN all_households h ON h.household_id = s.household_id
    WHERE s.escalated_on BETWEEN $1 AND $2 AND {_HOUSEHOLD}"""


def _grouped(value: str, measures: str, source: str) -> str:
    """(value, measures...) per value of `value` and, under TOTAL_KEY, for them all."""
    return (f"SELECT CASE WHEN grouping({value}) = 1 THEN '{TOTAL_KEY}' ELSE {value} END AS value, {measures}"
            f" {source} GROUP BY GROUPING SETS (({value}), ())")


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    dimension: str  # the vocabulary of labels.value_label
    measures: dict[str, str]  # measure -> French column header
    definition: str
    sql: str  # (value, *measures) for the year [$1, $2], filters $3 programme, $4 territory


SECTIONS: tuple[Section, ...] = (
    Section("interviews_by_mode", "Entretiens selon leur forme", "mode",
            {"interviews": "Entretiens", "hours": "Durée (heures)"},
            "Entretiens réalisés dans l'année et non annulés, selon leur forme ; la durée est celle déclarée.",
            _grouped("d.mode", "count(*) AS interviews, round(coalesce(sum(d.duration_minutes), 0) / 60.0, 1) AS hours",
                     _INTERVIEWS)),
    Section("interviews_by_topic", "Thèmes abordés en entretien", "topic", {"interviews": "Entretiens"},
            "Entretiens réalisés dans l'année abordant chaque thème : un entretien peut en aborder plusieurs,"
            " la ligne Total compte chaque entretien une fois.",
            _grouped("t.topic", "count(DISTINCT i.interview_id) AS interviews",
                     _INTERVIEWS.replace("WHERE", "LEFT JOIN LATERAL unnest(string_to_array(d.topics, ','))"
                                                  " AS t(topic) ON true WHERE", 1))),
    Section("workshops_by_theme", "Ateliers collectifs selon leur thème", "workshop_theme",
            {"workshops": "Ateliers", "participants": "Participations"},
            "Ateliers tenus dans l'année et leurs participations (une personne venue à deux ateliers compte"
            " deux fois). Un atelier ne relève d'aucun dispositif : aucun avec le filtre par dispositif.",
            _grouped("w.theme", "count(*) AS workshops, coalesce(sum(w.participants), 0) AS participants",
                     "FROM workshops w WHERE w.held_on BETWEEN $1 AND $2 AND $3::text IS NULL"
                     " AND ($4::text IS NULL OR w.territory = $4)")),
    Section("situations_by_severity", "Situations signalées selon leur gravité", "severity",
            {"situations": "Situations"}, "Situations délicates signalées à la veille sociale dans l'année.",
            _grouped("d.severity", "count(*) AS situations", _SITUATIONS)),
    Section("situations_by_reason", "Motifs des situations signalées", "reason", {"situations": "Situations"},
            "Situations signalées dans l'année pour chaque motif : une situation peut en avoir plusieurs,"
            " la ligne Total compte chaque situation une fois.",
            _grouped("m.reason", "count(DISTINCT s.situation_id) AS situations",
                     _SITUATIONS.replace("WHERE", "LEFT JOIN LATERAL unnest(string_to_array(d.reasons, ','))"
                                                  " AS m(reason) ON true WHERE", 1))),
    Section("review_decisions", "Décisions prises en veille sociale", "decision", {"decisions": "Décisions"},
            "Décisions prises lors des réunions de veille sociale de l'année, une par situation examinée et"
            " par réunion (une situation revue deux fois compte deux décisions).",
            _grouped("r.decision", "count(*) AS decisions",
                     f"FROM all_reviews r LEFT JOIN all_situations s ON s.situation_id = r.situation_id"
                     f" LEFT JOIN all_households h ON h.household_id = s.household_id"
                     f" WHERE r.held_on BETWEEN $1 AND $2 AND {_HOUSEHOLD}")),
    Section("rehousings_by_landlord", "Relogements selon le bailleur", "landlord",
            {"rehousings": "Relogements", "dalo": "dont DALO", "youth": "dont jeunes"},
            "Relogements dans le parc social confirmés dans l'année, dont ceux de ménages prioritaires DALO"
            " et de jeunes.",
            _grouped("r.landlord", "count(*) AS rehousings, count(*) FILTER (WHERE r.dalo_priority) AS dalo,"
                                   " count(*) FILTER (WHERE r.youth) AS youth",
                     f"FROM all_rehousings r LEFT JOIN all_households h ON h.household_id = r.household_id"
                     f" WHERE r.confirmed_on BETWEEN $1 AND $2 AND {_HOUSEHOLD}")),
    Section("closures_by_outcome", "Accompagnements clôturés selon leur issue", "closure_outcome",
            {"closures": "Accompagnements clôturés", "median_days": "Durée médiane (jours)"},
            "Accompagnements clôturés dans l'année, selon leur issue ; durée médiane de l'entrée dans le"
            " dispositif à la clôture, en jours.",
            _grouped("c.outcome", "count(*) AS closures, percentile_cont(0.5) WITHIN GROUP"
                                  " (ORDER BY h.closed_on - h.enrolled_on) AS median_days",
                     f"FROM all_households h LEFT JOIN all_closures c ON c.household_id = h.household_id"
                     f" WHERE h.closed_on BETWEEN $1 AND $2 AND {_HOUSEHOLD}")),
)
SECTIONS_BY_ID = {section.id: section for section in SECTIONS}

# The headline figures the by-programme and by-territory tables show.
SPLIT_FIGURES = ("households_followed", "interviews_held", "situations_escalated", "rehousings", "rehousings_dalo")


def _number(value: Any) -> int | float | None:  # noqa: ANN401
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 1)


async def section(conn: asyncpg.Connection, definition: Section, year: int, programme: str | None,
                  territory: str | None) -> dict[str | None, dict[str, int | float | None]]:
    """value (None: unknown; TOTAL_KEY: all) -> measures, for one year."""
    rows = await conn.fetch(definition.sql, date(year, 1, 1), date(year, 12, 31), programme, territory)
    return {r["value"]: {m: _number(r[m]) for m in definition.measures} for r in rows}


def change(value: int | float | None, previous: int | float | None) -> dict[str, Any]:
    """The change from N-1 to N, absolute and in percent (None when N-1 is 0 or unknown)."""
    if value is None or previous is None:
        return {"change": None, "change_percent": None}
    return {"change": _number(value - previous),
            "change_percent": round(100 * (value - previous) / previous, 1) if previous else None}


def _rows(current: dict, previous: dict, measures: dict[str, str]) -> tuple[list[dict], dict]:
    empty = dict.fromkeys(measures)
    values = sorted((set(current) | set(previous)) - {TOTAL_KEY}, key=lambda v: (v is None, v or ""))
    rows = [{"value": v, "figures": current.get(v, dict.fromkeys(measures, 0)),
             "previous": previous.get(v, dict.fromkeys(measures, 0))} for v in values]
    total = {"figures": current.get(TOTAL_KEY, empty), "previous": previous.get(TOTAL_KEY, empty)}
    return rows, total


async def document(conn: asyncpg.Connection, year: int, programme: str | None = None,
                   territory: str | None = None) -> dict[str, Any]:
    """The whole bilan of `year` beside `year - 1`, in the caller's snapshot."""
    now = await reports.activity(conn, year, programme, territory)
    before = await reports.activity(conn, year - 1, programme, territory)
    headline = [{"figure": f, "label": FIGURE_LABELS[f], "value": now[f], "previous": before[f],
                 **change(now[f], before[f])} for f in reports.FIGURES]
    splits = {}
    for by in ("programme", "territory"):
        current = {r[by]: r for r in await reports.breakdown(conn, year, by, programme, territory)}
        earlier = {r[by]: r for r in await reports.breakdown(conn, year - 1, by, programme, territory)}
        splits[by] = [{"value": v, "figures": {f: current.get(v, {}).get(f, 0) for f in SPLIT_FIGURES},
                       "previous": {f: earlier.get(v, {}).get(f, 0) for f in SPLIT_FIGURES}}
                      for v in sorted(set(current) | set(earlier), key=lambda v: (v is None, v or ""))]
    sections = []
    for definition in SECTIONS:
        rows, total = _rows(await section(conn, definition, year, programme, territory),
                            await section(conn, definition, year - 1, programme, territory), definition.measures)
        sections.append({"id": definition.id, "title": definition.title, "definition": definition.definition,
                         "dimension": definition.dimension, "measures": definition.measures,
                         "rows": rows, "total": total})
    return {"year": year, "previous_year": year - 1,
            **({"programme": programme} if programme else {}), **({"territory": territory} if territory else {}),
            "headline": headline, "by_programme": splits["programme"], "by_territory": splits["territory"],
            "sections": sections}


# The funders' view of one programme (FNAVDL/AVDL and the others): what each figure
# counts is shown beside it, on the page and in the JSON.
FUNDER_DEFINITIONS = {
    "households_accompanied": ("Ménages accompagnés",
                               "Ménages du dispositif dont l'accompagnement était ouvert au moins un jour de"
                               " l'année : entrés au plus tard le 31 décembre, non clôturés avant le 1er janvier."),
    "households_rehoused": ("Ménages relogés",
                            "Ménages accompagnés ayant eu un relogement dans le parc social confirmé dans"
                            " l'année."),
    "rehousing_rate": ("Taux de relogement (%)", "Ménages relogés / ménages accompagnés, en pourcentage."),
    "interviews_held": ("Entretiens réalisés", "Entretiens avec les ménages du dispositif tenus dans l'année,"
                                               " non annulés."),
    "accompaniment_hours": ("Heures d'accompagnement",
                            "Somme des durées déclarées de ces entretiens, en heures (les ateliers collectifs"
                            " n'y sont pas comptés)."),
    "rehousings_dalo": ("Relogements de ménages prioritaires DALO",
                        "Relogements confirmés dans l'année de ménages du dispositif reconnus prioritaires DALO."),
    "rehousings_youth": ("Relogements de jeunes", "Relogements confirmés dans l'année de jeunes du dispositif."),
    "closures": ("Accompagnements clôturés", "Accompagnements du dispositif clôturés dans l'année."),
    "median_days": ("Durée médiane des accompagnements clôturés (jours)",
                    "De l'entrée dans le dispositif à la clôture, pour les accompagnements clôturés dans l'année."),
}
_FUNDER_SQL = f"""
WITH followed AS (
    SELECT h.household_id, h.enrolled_on, h.closed_on FROM all_households h
    WHERE h.enrolled_on <= $2 AND (h.closed_on IS NULL OR h.closed_on >= $1) AND {_HOUSEHOLD})
SELECT
    (SELECT count(*) FROM followed) AS households_accompanied,
    (SELECT count(DISTINCT r.household_id) FROM all_rehousings r JOIN followed f USING (household_id)
      WHERE r.confirmed_on BETWEEN $1 AND $2) AS households_rehoused,
    (SELECT count(*) {_INTERVIEWS}) AS interviews_held,
    (SELECT coalesce(sum(d.duration_minutes), 0) {_INTERVIEWS}) AS minutes,
    (SELECT count(*) FROM followed WHERE closed_on BETWEEN $1 AND $2) AS closures,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY closed_on - enrolled_on) FROM followed
      WHERE closed_on BETWEEN $1 AND $2) AS median_days
"""


async def funder_figures(conn: asyncpg.Connection, year: int, programme: str, territory: str | None) -> dict:
    row = await conn.fetchrow(_FUNDER_SQL, date(year, 1, 1), date(year, 12, 31), programme, territory)
    figures = await reports.activity(conn, year, programme, territory)
    accompanied = row["households_accompanied"]
    return {
        "households_accompanied": accompanied, "households_rehoused": row["households_rehoused"],
        "rehousing_rate": round(100 * row["households_rehoused"] / accompanied, 1) if accompanied else None,
        "interviews_held": row["interviews_held"], "accompaniment_hours": round(row["minutes"] / 60, 1),
        "rehousings_dalo": figures["rehousings_dalo"], "rehousings_youth": figures["rehousings_youth"],
        "closures": row["closures"], "median_days": _number(row["median_days"]),
    }


async def funder(conn: asyncpg.Connection, year: int, programme: str, territory: str | None = None) -> dict:
    """One programme's figures for its funder, N beside N-1, each with its definition."""
    now = await funder_figures(conn, year, programme, territory)
    before = await funder_figures(conn, year - 1, programme, territory)
    return {"year": year, "previous_year": year - 1, "programme": programme,
            **({"territory": territory} if territory else {}),
            "figures": [{"figure": f, "label": label, "definition": definition, "value": now[f],
                         "previous": before[f], **change(now[f], before[f])}
                        for f, (label, definition) in FUNDER_DEFINITIONS.items()]}


# The follow-up of veille decisions (issue 14): what became of the actions the meetings
# decided, and how long situations waited for their first review and then for their
# resolution. Figures of the year, with the filters applied to the household, like the
# sections; by programme and by territory (the household's) and in all.
FOLLOW_UP_DEFINITIONS = {
    "actions_decided": ("Actions décidées en veille sociale",
                        "Actions décidées lors des réunions de veille sociale de l'année."),
    "actions_completed_on_time": ("… réalisées dans le délai",
                                  "Parmi ces actions, celles réalisées au plus tard à leur échéance."),
    "actions_completed_late": ("… réalisées en retard", "Parmi ces actions, celles réalisées après leur échéance."),
    "actions_cancelled": ("… annulées", "Parmi ces actions, celles annulées."),
    "actions_open": ("… en cours", "Parmi ces actions, celles ni réalisées ni annulées à la date des données."),
    "actions_overdue": ("Actions en retard au 31 décembre",
                        "Actions décidées au plus tard le 31 décembre (cette année ou avant), ni réalisées ni"
                        " annulées à cette date, dont l'échéance était passée (antérieure au 31 décembre)."),
    "median_days_to_first_review": ("Délai médian du signalement à la première revue (jours)",
                                    "Situations signalées dans l'année et examinées en réunion de veille sociale"
                                    " (quelle qu'en soit la date) : jours du signalement à la première réunion"
                                    " qui l'a examinée, médiane."),
    "median_days_to_resolution": ("Délai médian de la première revue à la résolution (jours)",
                                  "Situations examinées pour la première fois en veille sociale dans l'année et"
                                  " résolues depuis : jours de cette première réunion à la résolution, médiane."),
}
FOLLOW_UP_COUNTS = ("actions_decided", "actions_completed_on_time", "actions_completed_late", "actions_cancelled",
                    "actions_open", "actions_overdue")
FOLLOW_UP_MEDIANS = ("median_days_to_first_review", "median_days_to_resolution")
_FOLLOW_UP_SQL = f"""
WITH first_reviews AS (SELECT situation_id, min(held_on) AS first_review FROM all_reviews GROUP BY situation_id),
facts AS (
    SELECT h.programme, h.territory, f.figure, NULL::int AS days
    FROM all_actions a LEFT JOIN all_households h ON h.household_id = a.household_id
    CROSS JOIN LATERAL (VALUES ('actions_decided'), (CASE
        WHEN a.completed_on IS NOT NULL AND (a.cancelled_on IS NULL OR a.completed_on <= a.cancelled_on) THEN
            CASE WHEN a.completed_on <= a.due_on THEN 'actions_completed_on_time' ELSE 'actions_completed_late' END
        WHEN a.cancelled_on IS NOT NULL THEN 'actions_cancelled'
        ELSE 'actions_open' END)) AS f(figure)
    WHERE a.decided_on BETWEEN $1 AND $2 AND {_HOUSEHOLD}
  UNION ALL
    SELECT h.programme, h.territory, 'actions_overdue', NULL
    FROM all_actions a LEFT JOIN all_households h ON h.household_id = a.household_id
    WHERE a.decided_on <= $2 AND a.due_on < $2 AND (a.completed_on IS NULL OR a.completed_on > $2)
      AND (a.cancelled_on IS NULL OR a.cancelled_on > $2) AND {_HOUSEHOLD}
  UNION ALL
    SELECT h.programme, h.territory, 'median_days_to_first_review', r.first_review - s.escalated_on
    FROM all_situations s JOIN first_reviews r ON r.situation_id = s.situation_id
    LEFT JOIN all_households h ON h.household_id = s.household_id
    WHERE s.escalated_on BETWEEN $1 AND $2 AND {_HOUSEHOLD}
  UNION ALL
    SELECT h.programme, h.territory, 'median_days_to_resolution', s.resolved_on - r.first_review
    FROM all_situations s JOIN first_reviews r ON r.situation_id = s.situation_id
    LEFT JOIN all_households h ON h.household_id = s.household_id
    WHERE r.first_review BETWEEN $1 AND $2 AND s.resolved_on IS NOT NULL AND {_HOUSEHOLD})
SELECT figure, CASE WHEN grouping(programme) = 0 THEN 'programme' WHEN grouping(territory) = 0 THEN 'territory'
       END AS by, coalesce(programme, territory) AS value, count(*) AS facts,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median
FROM facts GROUP BY figure, GROUPING SETS ((programme), (territory), ())
"""


def _no_follow_up() -> dict[str, int | None]:
    """Nothing to count: counts 0, medians unknown."""
    return {**dict.fromkeys(FOLLOW_UP_COUNTS, 0), **dict.fromkeys(FOLLOW_UP_MEDIANS)}


async def follow_up_figures(conn: asyncpg.Connection, year: int, programme: str | None,
                            territory: str | None) -> dict[str | None, dict]:
    """by (None: all; 'programme', 'territory') -> value -> figure -> count or median (days)."""
    out: dict[str | None, dict] = {None: {None: _no_follow_up()}, "programme": {}, "territory": {}}
    for r in await conn.fetch(_FOLLOW_UP_SQL, date(year, 1, 1), date(year, 12, 31), programme, territory):
        figures = out[r["by"]].setdefault(r["value"], _no_follow_up())
        figures[r["figure"]] = _number(r["median"]) if r["figure"] in FOLLOW_UP_MEDIANS else r["facts"]
    return out


async def follow_up(conn: asyncpg.Connection, year: int, programme: str | None = None,
                    territory: str | None = None) -> dict[str, Any]:
    """The follow-up of veille decisions in `year` beside `year - 1`: the figures with their
    definitions, and by programme and by territory."""
    now = await follow_up_figures(conn, year, programme, territory)
    before = await follow_up_figures(conn, year - 1, programme, territory)
    total, earlier = now[None][None], before[None][None]
    splits = {}
    for by in ("programme", "territory"):
        splits[f"by_{by}"] = [{"value": v, "figures": now[by].get(v) or _no_follow_up(),
                               "previous": before[by].get(v) or _no_follow_up()}
                              for v in sorted(set(now[by]) | set(before[by]), key=lambda v: (v is None, v or ""))]
    return {"year": year, "previous_year": year - 1,
            **({"programme": programme} if programme else {}), **({"territory": territory} if territory else {}),
            "figures": [{"figure": f, "label": label, "definition": definition, "value": total[f],
                         "previous": earlier[f], **change(total[f], earlier[f])}
                        for f, (label, definition) in FOLLOW_UP_DEFINITIONS.items()],
            **splits}
