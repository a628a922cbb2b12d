"""The bilan as the association publishes it: the headline figures of year N beside N-1,
the year by programme and by territory, and the sections the headline figures do not
break down (interviews by mode and topic, workshops by theme, situations by severity,
reason and decision, rehousings by landlord, closures by outcome with their median
duration); and the funders' view of one programme. One document (a dict), served as
JSON and rendered as the printable page (page.py).

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
