"""What stats' API answers in JSON (OpenAPI only: the routes return the report dicts of
reports.py, which these models describe; the CSV and .xlsx exports are described as files)."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

FIGURES_EXAMPLE = {
    "households_followed": 412, "interviews_held": 2310, "social_workers_active": 18, "veille_meetings": 11,
    "situations_reviewed": 57, "situations_escalated": 64, "workshops_held": 23, "workshop_participants": 187,
    "rehousings": 96, "rehousings_dalo": 31, "rehousings_youth": 12,
}


class Figures(BaseModel):
    """The headline figures (reports.FIGURES), each a count over the year."""

    households_followed: int
    interviews_held: int
    social_workers_active: int
    veille_meetings: int
    situations_reviewed: int
    situations_escalated: int
    workshops_held: int
    workshop_participants: int
    rehousings: int
    rehousings_dalo: int
    rehousings_youth: int


class Filters(BaseModel):
    year: int
    programme: str | None = None
    territory: str | None = None


class Activity(Figures, Filters):
    """The year's figures, with the filters asked for (absent when not asked)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"year": 2023, "territory": "bretagne",
                                                                **FIGURES_EXAMPLE}]})


class Breakdown(BaseModel):
    """One row per value of `by` (keyed by the dimension's name, null for facts without
    one), adding up to `totals`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "year": 2023, "by": "programme", "rows": [{"programme": "pension_de_famille", **FIGURES_EXAMPLE}],
        "totals": {"year": 2023, **FIGURES_EXAMPLE}}]})

    year: int
    by: str
    rows: list[dict[str, str | int | None]] = Field(description="the dimension's value under its name, then the figures")
    totals: Activity


class PartitionPosition(BaseModel):
    topic: str
    partition: int
    position: int = Field(description="the next offset the projector will apply")
    end_offset: int | None = Field(description="Kafka's end offset; null while Kafka is unreachable")
    lag: int | None


class Freshness(BaseModel):
    last_event_time: datetime | None
    applied_at: datetime | None


class ProjectionStatus(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "generation": 3,
        "partitions": [{"topic": "alfi.intake.events", "partition": 0, "position": 1200, "end_offset": 1200, "lag": 0}],
        "topics": {"alfi.intake.events": {"last_event_time": "2024-01-15T09:30:00Z",
                                          "applied_at": "2024-01-15T09:30:01Z"}}}]})

    generation: int
    partitions: list[PartitionPosition]
    topics: dict[str, Freshness]


class Headline(BaseModel):
    figure: str
    label: str = Field(description="the figure's French name")
    value: int
    previous: int = Field(description="the same figure the year before")
    change: int | None
    change_percent: float | None = Field(description="null when the year before is 0")


class MeasuredRow(BaseModel):
    value: str | None = Field(description="the vocabulary slug or name; null: unknown (Non renseigné)")
    figures: dict[str, int | float | None]
    previous: dict[str, int | float | None]


class SectionTotal(BaseModel):
    figures: dict[str, int | float | None]
    previous: dict[str, int | float | None]


class BilanSection(BaseModel):
    id: str
    title: str
    definition: str
    dimension: str
    measures: dict[str, str] = Field(description="measure -> French column header")
    rows: list[MeasuredRow]
    total: SectionTotal


class DefinedFigure(BaseModel):
    """A figure beside the year before, with its French name and what it counts."""

    figure: str
    label: str
    definition: str = Field(description="what the figure counts, in French, as the page shows it")
    value: int | float | None
    previous: int | float | None
    change: int | float | None
    change_percent: float | None


FOLLOW_UP_EXAMPLE = {
    "year": 2023, "previous_year": 2022,
    "figures": [{"figure": "actions_decided", "label": "Actions décidées en veille sociale",
                 "definition": "Actions décidées lors des réunions de veille sociale de l'année.",
                 "value": 212, "previous": 180, "change": 32, "change_percent": 17.8},
                {"figure": "median_days_to_first_review",
                 "label": "Délai médian du signalement à la première revue (jours)",
                 "definition": "Situations signalées dans l'année et examinées en réunion de veille sociale…",
                 "value": 18.5, "previous": 21, "change": -2.5, "change_percent": -11.9}],
    "by_programme": [{"value": "fnavdl", "figures": {"actions_decided": 31, "median_days_to_first_review": 15},
                      "previous": {"actions_decided": 25, "median_days_to_first_review": None}}],
    "by_territory": [{"value": "bretagne", "figures": {"actions_decided": 64, "actions_overdue": 3},
                      "previous": {"actions_decided": 58, "actions_overdue": 5}}],
}


class FollowUpDocument(Filters):
    """The follow-up of veille decisions in `year` beside `previous_year`: actions decided,
    what became of them, those overdue at the year's end, and the median delays to a
    situation's first review and from it to the resolution (null: none to measure); in all,
    by programme and by territory (the household's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [FOLLOW_UP_EXAMPLE]})

    previous_year: int
    figures: list[DefinedFigure]
    by_programme: list[MeasuredRow]
    by_territory: list[MeasuredRow]


BILAN_EXAMPLE = {
    "year": 2023, "previous_year": 2022,
    "headline": [{"figure": "households_followed", "label": "Ménages suivis", "value": 1845, "previous": 1790,
                  "change": 55, "change_percent": 3.1}],
    "by_programme": [{"value": "fnavdl", "figures": {"households_followed": 230}, "previous": {"households_followed": 214}}],
    "by_territory": [{"value": "bretagne", "figures": {"households_followed": 640},
                      "previous": {"households_followed": 600}}],
    "sections": [{"id": "interviews_by_mode", "title": "Entretiens selon leur forme",
                  "definition": "Entretiens réalisés dans l'année et non annulés, selon leur forme.",
                  "dimension": "mode", "measures": {"interviews": "Entretiens", "hours": "Durée (heures)"},
                  "rows": [{"value": "home_visit", "figures": {"interviews": 3120, "hours": 2496.5},
                            "previous": {"interviews": 2980, "hours": 2301.0}}],
                  "total": {"figures": {"interviews": 9618, "hours": 6902.5},
                            "previous": {"interviews": 9200, "hours": 6540.0}}}],
    "follow_up": FOLLOW_UP_EXAMPLE,
    "data_as_of": {"generation": 3, "partitions": [], "topics": {}},
}


class BilanDocument(Filters):
    """The bilan of `year` beside `previous_year` (what the printable page shows)."""

    model_config = ConfigDict(json_schema_extra={"examples": [BILAN_EXAMPLE]})

    previous_year: int
    headline: list[Headline]
    by_programme: list[MeasuredRow]
    by_territory: list[MeasuredRow]
    sections: list[BilanSection]
    follow_up: FollowUpDocument = Field(description="the follow-up of veille decisions (`/v1/reports/follow-up`)")
    data_as_of: ProjectionStatus = Field(description="the projections' state the figures were read in")


class FunderDocument(Filters):
    """One programme's figures for its funder, beside the year before."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "year": 2023, "previous_year": 2022, "programme": "fnavdl",
        "figures": [{"figure": "rehousing_rate", "label": "Taux de relogement (%)",
                     "definition": "Ménages relogés / ménages accompagnés, en pourcentage.",
                     "value": 18.3, "previous": 16.9, "change": 1.4, "change_percent": 8.3}]}]})

    previous_year: int
    figures: list[DefinedFigure]


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2023, "expires_in_minutes": 60}]})

    year: int = Field(ge=1900, le=2100)
    expires_in_minutes: int = Field(60, ge=1, le=1440, description="at most 24 h")


class ReportLink(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "url": "/reports/2023?link=rl_3q2J…", "year": 2023, "expires_at": "2024-01-15T10:30:00Z"}]})

    url: str = Field(description="relative to the stats service; a secret: share it like a password")
    year: int
    expires_at: datetime


class PublishedBreakdown(BaseModel):
    """A breakdown for an external audience: a count withheld from publication is null."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "year": 2023, "by": "territory", "threshold": 5,
        "rows": [{"territory": "bretagne", **FIGURES_EXAMPLE, "rehousings_dalo": None, "rehousings_youth": None}],
        "totals": {"year": 2023, **FIGURES_EXAMPLE}}]})

    year: int
    by: str
    threshold: int = Field(description="counts from 1 to threshold - 1 are withheld, with their complements")
    rows: list[dict[str, str | int | None]]
    totals: dict[str, int | None]


class QualityCheck(BaseModel):
    check: str = Field(description="no_recent_interview, closure_outcome_unknown, referent_inactive or"
                                   " situation_not_reviewed (the `check` label of alfi_data_quality_issues)")
    label: str
    definition: str = Field(description="what the check counts, in French, with its threshold")
    threshold_days: int | None = Field(description="the check's threshold in days (settings); null: none")
    count: int
    ids: list[UUID] | None = Field(None, description=(
        "with `ids=true` (scope `reports:quality`): the pseudonymous ids, of households or (situation_not_reviewed)"
        " of situations; otherwise null"))


class QualityRow(BaseModel):
    value: str | None = Field(description="the programme or territory; null: unknown")
    counts: dict[str, int] = Field(description="check -> count")


class DataQuality(BaseModel):
    """The records to look at as of `on`, check by check, by programme and by territory."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "on": "2023-12-31", "territory": "bretagne",
        "checks": [{"check": "referent_inactive", "label": "Ménages dont le référent n'a plus d'activité",
                    "definition": "Ménages dont l'accompagnement est ouvert à la date et dont le référent…",
                    "threshold_days": 90, "count": 4, "ids": None}],
        "by_programme": [{"value": "fnavdl", "counts": {"no_recent_interview": 2, "closure_outcome_unknown": 0,
                                                         "referent_inactive": 4, "situation_not_reviewed": 1}}],
        "by_territory": [{"value": "bretagne", "counts": {"no_recent_interview": 2, "closure_outcome_unknown": 0,
                                                           "referent_inactive": 4, "situation_not_reviewed": 1}}]}]})

    on: date
    programme: str | None = None
    territory: str | None = None
    checks: list[QualityCheck]
    by_programme: list[QualityRow]
    by_territory: list[QualityRow]
