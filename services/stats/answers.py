"""What stats' API answers in JSON (OpenAPI only: the routes return the report dicts of
reports.py, which these models describe; the CSV and .xlsx exports are described as files)."""

from __future__ import annotations

from datetime import datetime

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
