"""Data quality for managers: the records to look at as of a date, check by check, by
programme and by territory (the household's), with the pseudonymous ids of each for a
token with `reports:quality`. Served by `/v1/reports/data-quality` and the page
`/reports/{year}/quality`; stats also counts them as of today every minute for
Prometheus (`alfi_data_quality_issues{check}`, beside `alfi_data_quality_threshold{check}`
from the settings, which the alert AlfiDataQualityIssues compares).

The checks read the live projections, not the anonymous residue: a household whose
personal data was erased (at any date) is left out, as nothing of it can be corrected any
more, and a list of ids names only records that can be looked up. Interviews held by a
referent with an erased household still show the referent active.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.common.metrics import DATA_QUALITY_ISSUES, DATA_QUALITY_THRESHOLD
from services.common.settings import ServiceSettings

from .generations import snapshot
from .labels import DIMENSION_LABELS, TOTAL, UNKNOWN, value_label

# check -> its French name; the definitions (with the thresholds) are `definitions()`'.
CHECKS = {
    "no_recent_interview": "Accompagnements ouverts sans entretien récent",
    "closure_outcome_unknown": "Accompagnements clôturés sans issue connue",
    "referent_inactive": "Ménages dont le référent n'a plus d'activité",
    "situation_not_reviewed": "Situations signalées jamais examinées en veille sociale",
}


@dataclass(frozen=True)
class Thresholds:
    """How many days make a record worth a look (ALFI_DATA_QUALITY_*_DAYS)."""

    interview_days: int = 90
    referent_days: int = 90
    review_days: int = 60

    @classmethod
    def of(cls, settings: ServiceSettings) -> Thresholds:
        return cls(settings.data_quality_interview_days, settings.data_quality_referent_days,
                   settings.data_quality_review_days)

    def days(self, check: str) -> int | None:
        return {"no_recent_interview": self.interview_days, "referent_inactive": self.referent_days,
                "situation_not_reviewed": self.review_days}.get(check)


def definitions(thresholds: Thresholds) -> dict[str, str]:
    """What each check counts, in French, as the answer and the page state it."""
    t = thresholds
    return {
        "no_recent_interview": (
            f"Accompagnements ouverts à la date (entrés au plus tard ce jour-là, non clôturés) sans aucun entretien"
            f" tenu et non annulé dans les {t.interview_days} jours qui la précèdent (date comprise), y compris"
            f" ceux jamais reçus en entretien, pourvu qu'ils soient entrés depuis {t.interview_days} jours au moins."),
        "closure_outcome_unknown": (
            "Accompagnements clôturés au plus tard à la date dont l'issue n'est pas connue des statistiques."
            " L'issue est obligatoire à la clôture : ce nombre est normalement 0 ; sinon, une clôture lue sans la"
            " clé de son ménage (effacé) avant que l'effacement ne soit pris en compte, ou un défaut de la"
            " plateforme."),
        "referent_inactive": (
            f"Ménages dont l'accompagnement est ouvert à la date et dont le référent actuel (le dernier désigné)"
            f" n'a tenu aucun entretien, avec quelque ménage que ce soit, dans les {t.referent_days} jours qui"
            f" la précèdent (date comprise) : référent parti ou absent, à remplacer."),
        "situation_not_reviewed": (
            f"Situations signalées à la veille sociale {t.review_days} jours ou plus avant la date, non résolues"
            f" à la date, et qu'aucune réunion de veille sociale tenue au plus tard ce jour-là n'a examinées."),
    }


# (check, id, programme, territory) of every record to look at as of $1; thresholds in
# days $2 (interview), $3 (referent), $4 (review); filters $5 programme, $6 territory.
_ISSUES = """
WITH live AS (
    SELECT household_id, programme, territory, enrolled_on, closed_on, referent_worker_id FROM households
    WHERE erased_on IS NULL AND ($5::text IS NULL OR programme = $5) AND ($6::text IS NULL OR territory = $6)),
open AS (SELECT * FROM live WHERE enrolled_on <= $1::date AND (closed_on IS NULL OR closed_on > $1::date)),
interviewed AS (SELECT DISTINCT household_id FROM interviews
                WHERE NOT cancelled AND held_on > $1::date - $2::int AND held_on <= $1::date),
active AS (SELECT DISTINCT worker_id FROM all_interviews
           WHERE NOT cancelled AND held_on > $1::date - $3::int AND held_on <= $1::date AND worker_id IS NOT NULL),
reviewed AS (SELECT DISTINCT r.situation_id FROM reviews r JOIN meetings m ON m.meeting_id = r.meeting_id
             WHERE m.held_on <= $1::date)
SELECT 'no_recent_interview' AS "check", o.household_id AS id, o.programme, o.territory FROM open o
WHERE o.enrolled_on <= $1::date - $2::int AND o.household_id NOT IN (SELECT household_id FROM interviewed)
UNION ALL
SELECT 'closure_outcome_unknown', l.household_id, l.programme, l.territory
FROM live l JOIN closures c ON c.household_id = l.household_id  -- closures stats has read
WHERE l.closed_on <= $1::date AND c.outcome IS NULL
UNION ALL
SELECT 'referent_inactive', o.household_id, o.programme, o.territory FROM open o
WHERE o.referent_worker_id IS NOT NULL AND o.referent_worker_id NOT IN (SELECT worker_id FROM active)
UNION ALL
SELECT 'situation_not_reviewed', s.situation_id, l.programme, l.territory
FROM situations s JOIN live l ON l.household_id = s.household_id
WHERE s.escalated_on <= $1::date - $4::int AND (s.resolved_on IS NULL OR s.resolved_on > $1::date)
  AND s.situation_id NOT IN (SELECT situation_id FROM reviewed)
ORDER BY 1, 2
"""


async def issues(conn: asyncpg.Connection, on: date, thresholds: Thresholds, programme: str | None = None,
                 territory: str | None = None) -> list[asyncpg.Record]:
    """Every record to look at as of `on`: (check, id, programme, territory), in the
    generation on the connection's search_path."""
    return await conn.fetch(_ISSUES, on, thresholds.interview_days, thresholds.referent_days,
                            thresholds.review_days, programme, territory)


def _rows(found: list[asyncpg.Record], by: str) -> list[dict[str, Any]]:
    counts: dict[str | None, Counter] = {}
    for issue in found:
        counts.setdefault(issue[by], Counter())[issue["check"]] += 1
    return [{"value": value, "counts": {check: counts[value][check] for check in CHECKS}}
            for value in sorted(counts, key=lambda v: (v is None, v or ""))]


async def report(conn: asyncpg.Connection, on: date, thresholds: Thresholds, programme: str | None = None,
                 territory: str | None = None, ids: bool = False) -> dict[str, Any]:
    """The data-quality report as of `on`: each check with its definition and count (and
    its ids, `ids`), and the counts by programme and by territory."""
    found = await issues(conn, on, thresholds, programme, territory)
    counts = Counter(issue["check"] for issue in found)
    defined = definitions(thresholds)
    return {
        "on": on, **({"programme": programme} if programme else {}), **({"territory": territory} if territory else {}),
        "checks": [{"check": check, "label": label, "definition": defined[check],
                    "threshold_days": thresholds.days(check), "count": counts[check],
                    "ids": [issue["id"] for issue in found if issue["check"] == check] if ids else None}
                   for check, label in CHECKS.items()],
        "by_programme": _rows(found, "programme"),
        "by_territory": _rows(found, "territory"),
    }


def set_thresholds(settings: ServiceSettings) -> None:
    """`alfi_data_quality_threshold{check}`: how many records of each check the alert
    tolerates (ALFI_DATA_QUALITY_ALERT_<CHECK>)."""
    for check in CHECKS:
        DATA_QUALITY_THRESHOLD.labels(check).set(getattr(settings, f"data_quality_alert_{check}"))


async def observe(pool: asyncpg.Pool, thresholds: Thresholds, on: date) -> dict[str, int]:
    """Count the records of each check as of `on` in the generation the reports read and
    set `alfi_data_quality_issues{check}`; returns the counts."""
    async with snapshot(pool) as (conn, _):
        found = await issues(conn, on, thresholds)
    counts = Counter(issue["check"] for issue in found)
    for check in CHECKS:
        DATA_QUALITY_ISSUES.labels(check).set(counts[check])
    return {check: counts[check] for check in CHECKS}


def french_table(report: dict[str, Any], with_ids: bool = False) -> list[list[str | int]]:
    """The report as a French table (exports.french_csv, exports.xlsx): the counts by
    programme, by territory and in all; or, `with_ids`, one line per id to look at."""
    if with_ids:
        return [["Contrôle", "Identifiant"], *([c["label"], str(i)] for c in report["checks"] for i in c["ids"])]
    return [
        ["Ventilation", "Valeur", *CHECKS.values()],
        *([DIMENSION_LABELS[by], UNKNOWN if row["value"] is None else value_label(by, row["value"]),
           *(row["counts"][check] for check in CHECKS)] for by in ("programme", "territory") for row in report[f"by_{by}"]),
        [TOTAL, "", *(c["count"] for c in report["checks"])],
    ]
