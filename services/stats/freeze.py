"""Frozen bilans (reproducibility): a closed year's figures recorded once, with the Kafka
offsets and the generation they were computed at and the SHA-256 of their canonical JSON;
recomputing them from offset 0 up to those offsets gives the same hash.

    python -m services.stats.freeze freeze <year> | verify <year> | list
        (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS; make freeze / make verify-bilan YEAR=2023)

HTTP: `POST /v1/reports/frozen/{year}` (scope `reports:freeze`), `GET /v1/reports/frozen`
and `GET /v1/reports/frozen/{year}` (`reports:read`). The figures are the whole
association's: a token bound to territories can neither freeze nor read them. The freeze
and every read are audited (`freeze_report`, `read_report`, object `frozen:<year>`).

Why the offsets are exact: the projector stores its positions in the transaction that
applies the events (consumer.py), so one repeatable-read snapshot of the current
generation holds the figures and the positions they were computed at. A year is frozen
only once it is over and the projections have read every event on the topics.

`verify` replays the topics up to the recorded offsets into a scratch schema
(`stats_verify_<hex>`, dropped afterwards; `generations.drop_all_but` and rebuilds ignore
it) with the live projector's code, publishing nothing, reconciles erasures as a
rebuild's switch does, and hashes the figures read there. A topic whose log no longer
starts at offset 0 (records deleted) cannot be replayed: the verification fails, it never
compares a partial history. Limit: an erased household's figures come from its
anonymised residue (stats.anon_*, README "Privacy"), which holds what the projections
knew when it was anonymised; a household erased after the freeze whose events for the
frozen year came after the recorded offsets would make the recomputed figures differ.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import APIRouter, Path as PathParam, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from alfi_contracts.vocabulary import Programme
from services.common import audit, faults
from services.common.access import Principal, authorise_report
from services.common.commands import Context
from services.common.consumer import Batches, stored_positions
from services.common.db import create_pool
from services.common.errors import Conflict, NotFound, NotYetKnown, Rejected
from services.common.http import Authorised, audited_read, request_principal
from services.common.kafka import Kafka, connection, partitions_of
from services.common.migrations import migrate
from services.common.problems import PROBLEM, responses_for
from services.common.settings import ServiceSettings

from . import bilan, generations, reports
from .answers import FIGURES_EXAMPLE
from .projector import Projector
from .routes import READ, report_id

FREEZE = Authorised("reports:freeze")
TABLE = f"{generations.BASE}.frozen_years"
SCRATCH_PREFIX = "stats_verify_"
Year = Annotated[int, PathParam(ge=1900, le=2100, description="calendar year, e.g. 2023")]

log = structlog.get_logger("alfi.stats.freeze")


async def _breakdowns(conn: asyncpg.Connection, year: int) -> dict[str, Any]:
    return {by: await reports.breakdown(conn, year, by) for by in reports.DIMENSIONS}


async def _funders(conn: asyncpg.Connection, year: int) -> dict[str, Any]:
    return {programme.value: await bilan.funder(conn, year, programme.value) for programme in Programme}


# What a frozen bilan holds, part by part, read on the connection's search_path: the
# headline figures, the breakdown by every dimension, the published bilan's document and
# every programme's funder view, unfiltered. The one place that says it: the hash, the
# record and the verification all take it from here. A part added later is frozen from
# then on; `verify` recomputes the parts a record holds, so years frozen before still verify.
PARTS: dict[str, Callable[[asyncpg.Connection, int], Awaitable[Any]]] = {
    "activity": reports.activity,
    "breakdowns": _breakdowns,
    "bilan": bilan.document,
    "funders": _funders,
}
# Not frozen: the veille follow-up (bilan.follow_up), whose figures move with completions
# and resolutions dated after the year, which an erasure's residue carries past the
# recorded offsets: its recomputation would differ without anything being wrong.


async def figures(conn: asyncpg.Connection, year: int, parts: Iterable[str] = tuple(PARTS)) -> dict[str, Any]:
    """The frozen bilan's `parts` (all by default) as JSON values only (dates as ISO
    strings), so that the hash is the same once stored and read back."""
    return jsonable_encoder({part: await PARTS[part](conn, year) for part in parts})


def digest(content: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of `content`."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class YearNotClosed(Conflict):
    kind = "year_not_closed"

    def __init__(self, year: int) -> None:
        super().__init__(f"{year} is not over: only a past year can be frozen.", field="year")


class AlreadyFrozen(Conflict):
    kind = "already_frozen"

    def __init__(self, year: int) -> None:
        super().__init__(f"{year} is already frozen: GET /v1/reports/frozen/{year} gives its record.")


class ProjectionBehind(NotYetKnown):
    """The projections have not read every event yet: retry shortly (Retry-After)."""

    kind = "projection_behind"


class HistoryMissing(RuntimeError):
    """A topic no longer holds the records before a recorded offset: nothing to recompute from."""


def record_of(row: asyncpg.Record) -> dict[str, Any]:
    record = {**row, "offsets": {topic: dict(sorted(partitions.items(), key=lambda item: int(item[0])))
                                 for topic, partitions in sorted(json.loads(row["offsets"]).items())}}
    if "figures" in record:
        record["figures"] = json.loads(record["figures"])
    return record


async def freeze(pool: asyncpg.Pool, conn: asyncpg.Connection, year: int, ends: dict[tuple[str, int], int],
                 frozen_by: str) -> dict[str, Any]:
    """Freeze `year` from a snapshot of the current generation, the record inserted on
    `conn` (in the caller's transaction, which audits it). `ends`: Kafka's end offsets,
    read before the snapshot, so positions at or past them mean every event then on the
    topics is in the figures."""
    if year >= datetime.now(UTC).year:
        raise YearNotClosed(year)
    if await conn.fetchval(f"SELECT 1 FROM {TABLE} WHERE year = $1", year):
        raise AlreadyFrozen(year)
    if not ends:
        raise ProjectionBehind("Kafka's end offsets cannot be read, so whether the projections are up to date"
                               " is not known; retry once Kafka answers.")
    async with generations.snapshot(pool) as (snapshot, generation):
        positions = {(tp.topic, tp.partition): offset
                     for tp, offset in (await stored_positions(snapshot, generations.PROJECTOR)).items()}
        behind = sum(max(end - positions.get(tp, 0), 0) for tp, end in ends.items())
        if behind:
            raise ProjectionBehind(f"The projections are {behind} events behind the topics; retry once they have"
                                   " caught up (GET /v1/projections/status shows the lag).")
        content = await figures(snapshot, year)
    offsets: dict[str, dict[str, int]] = {}
    for topic, partition in sorted(set(ends) | set(positions)):
        offsets.setdefault(topic, {})[str(partition)] = positions.get((topic, partition), 0)
    row = await conn.fetchrow(
        f"INSERT INTO {TABLE} (year, generation, offsets, figures, sha256, frozen_by)"
        " VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6) ON CONFLICT (year) DO NOTHING RETURNING *",
        year, generation, json.dumps(offsets), json.dumps(content, ensure_ascii=False), digest(content), frozen_by)
    if row is None:  # frozen meanwhile by another request
        raise AlreadyFrozen(year)
    return record_of(row)


async def frozen(conn: asyncpg.Connection | asyncpg.Pool, year: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT * FROM {TABLE} WHERE year = $1", year)
    if row is None:
        raise NotFound(f"{year} is not frozen: POST /v1/reports/frozen/{year} freezes it.", field="year")
    return record_of(row)


async def listing(conn: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    return [record_of(row) for row in await conn.fetch(
        f"SELECT year, generation, offsets, sha256, frozen_at, frozen_by FROM {TABLE} ORDER BY year")]


# --- HTTP ---------------------------------------------------------------------------

OFFSETS_EXAMPLE = {"alfi.intake.events": {"0": 1204, "1": 1187}, "alfi.casework.events": {"0": 5310, "1": 5296},
                   "alfi.veille.events": {"0": 88, "1": 91}}
RECORD_EXAMPLE = {"year": 2023, "generation": 3, "offsets": OFFSETS_EXAMPLE,
                  "sha256": "9f2c4e0b7d1a3c5e8f6b2d4a0c9e7f1b3d5a7c9e1f3b5d7a9c1e3f5b7d9a1c3e",
                  "frozen_at": "2024-02-01T10:15:00Z", "frozen_by": "bilan-2023"}


class FrozenSummary(BaseModel):
    """A frozen year, without its figures."""

    model_config = ConfigDict(json_schema_extra={"examples": [RECORD_EXAMPLE]})

    year: int
    generation: int = Field(description="the generation of the projections the figures were read in")
    offsets: dict[str, dict[str, int]] = Field(
        description="per topic and partition, the next offset the projections had applied: the figures are"
                    " those of every event before it")
    sha256: str = Field(description="SHA-256 (hex) of the figures' canonical JSON (keys sorted, no spaces, UTF-8)")
    frozen_at: datetime
    frozen_by: str = Field(description="the label of the token that froze it")


class FrozenBilan(FrozenSummary):
    """A frozen year and its figures, as they were when it was frozen."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**RECORD_EXAMPLE, "figures": {
        "activity": {"year": 2023, **FIGURES_EXAMPLE},
        "breakdowns": {"programme": [{"programme": "fnavdl", **FIGURES_EXAMPLE}]}}}]})

    figures: dict[str, Any] = Field(
        description="`activity`: the headline figures (GET /v1/reports/activity); `breakdowns`: per dimension,"
                    " the rows of GET /v1/reports/activity/breakdown")


class FrozenYears(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"years": [RECORD_EXAMPLE]}]})

    years: list[FrozenSummary]


def _problems(responses: dict, status: int, description: str, **examples: tuple[str, str]) -> dict:
    """`responses` with `status` described as this module answers it (`kind`: (title, detail))."""
    answer = responses[status]
    answer["description"] = description
    answer["content"][PROBLEM]["examples"] = {
        kind: {"value": {"type": "about:blank", "title": title, "status": status, "detail": detail, "kind": kind}}
        for kind, (title, detail) in examples.items()}
    return responses


FREEZE_RESPONSES = _problems(
    responses_for(params=True, command=True, answer=(201, FrozenBilan, "Frozen: the record and its figures")),
    409, "The year is not over (`year_not_closed`), already frozen (`already_frozen`), or the projections have"
         " not read every event yet (`projection_behind`: retry after Retry-After seconds).",
    year_not_closed=("Conflict", YearNotClosed(2026).detail), already_frozen=("Conflict", AlreadyFrozen(2023).detail),
    projection_behind=("Conflict", "The projections are 12 events behind the topics; retry once they have"
                                   " caught up (GET /v1/projections/status shows the lag)."))
FREEZE_RESPONSES[409]["headers"] = {"Retry-After": {
    "description": "Seconds to wait before retrying (projection_behind only)", "schema": {"type": "integer"}}}
# The platform declares 200 beside every 201 (a replayed create); a freeze is not replayed.
FREEZE_RESPONSES[200]["description"] = "Never answered: freezing a frozen year answers 409 already_frozen"
READ_RESPONSES = _problems(
    responses_for(params=True, lookup=True, answer=(200, FrozenBilan, "The frozen year and its figures")),
    404, "The year is not frozen.",
    not_found=("Not found", "2023 is not frozen: POST /v1/reports/frozen/2023 freezes it."))


def routes(runtime) -> APIRouter:  # noqa: ANN001 - the service's Runtime
    router = APIRouter(tags=["reports"])

    @router.post("/v1/reports/frozen/{year}", status_code=201, response_model=FrozenBilan,
                 responses=FREEZE_RESPONSES, dependencies=[FREEZE])
    async def freeze_year(request: Request, year: Year) -> dict:
        """Freeze a past year's bilan: its figures, the offsets and generation they were computed
        at, and their SHA-256. Once only. Scope `reports:freeze`, a token for every territory."""
        pool = request.app.state.pool
        principal: Principal = request_principal(request)

        async def act() -> dict:
            authorise_report(principal, None)
            return await freeze(pool, conn, year, await runtime.end_offsets(generations.EVENT_TOPICS), principal.label)

        # The audit row commits with the record, as a command's does (audit.py).
        async with pool.acquire() as conn, conn.transaction():
            return await audited_read(request, "freeze_report", act, object_id=report_id("frozen", year), conn=conn)

    @router.get("/v1/reports/frozen", response_model=FrozenYears, responses=responses_for(
        answer=(200, FrozenYears, "The frozen years, without their figures")), dependencies=[READ])
    async def frozen_years(request: Request) -> dict:
        """The frozen years, oldest first, without their figures. Scope `reports:read`, a token for
        every territory."""
        async def read() -> dict:
            authorise_report(request_principal(request), None)
            return {"years": await listing(request.app.state.pool)}

        return await audited_read(request, "read_report", read, object_id="frozen")

    @router.get("/v1/reports/frozen/{year}", response_model=FrozenBilan, responses=READ_RESPONSES,
                dependencies=[READ])
    async def frozen_year(request: Request, year: Year) -> dict:
        """A frozen year's record and figures. Scope `reports:read`, a token for every territory."""
        async def read() -> dict:
            authorise_report(request_principal(request), None)
            return await frozen(request.app.state.pool, year)

        return await audited_read(request, "read_report", read, object_id=report_id("frozen", year))

    return router


# --- Verification -------------------------------------------------------------------

async def open_pool(settings: ServiceSettings) -> asyncpg.Pool:
    """A pool on stats' base schema, migrated as the service migrates it."""
    from services.common.service import Runtime  # noqa: PLC0415 - the service module imports this one

    from .service import DEFINITION  # noqa: PLC0415

    pool = await create_pool(settings, generations.BASE)
    async with pool.acquire() as conn:
        await migrate(conn, generations.BASE, Runtime(DEFINITION, settings).migration_files())
    return pool


async def apply_poll(conn: asyncpg.Connection, projector: Projector, batches: Batches, search_path: str) -> None:
    """Apply a poll as the live consumer did: whole, or, when that fails for a record's
    fault, record by record, leaving out those that fail alone (the live consumer
    dead-lettered them). Dead letters are not written: they were published the first time."""
    async def apply(part: Batches) -> None:
        prepared = await projector.prepare(part)
        prepared.letters.clear()
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {search_path}")
            await projector.apply(conn, prepared)

    try:
        await apply(batches)
        return
    except Exception as error:  # noqa: BLE001 - classified as the consumer classifies it
        if faults.transient(error):
            raise
    for tp, records in batches.items():
        for record in records:
            try:
                await apply({tp: [record]})
            except Exception as error:  # noqa: BLE001 - this record's fault, unless a dependency's
                if faults.transient(error):
                    raise
                log.warning("verify_record_left_out", topic=tp.topic, partition=tp.partition, offset=record.offset,
                            error=faults.where(error))


async def replay(kafka: Kafka, pool: asyncpg.Pool, conn: asyncpg.Connection, search_path: str,
                 offsets: dict[str, dict[str, int]]) -> int:
    """Apply every record before the recorded offsets to the schema first on `search_path`;
    returns how many were read."""
    targets = {TopicPartition(topic, int(partition)): offset
               for topic, partitions in offsets.items() for partition, offset in partitions.items() if offset > 0}
    if not targets:
        return 0
    consumer = AIOKafkaConsumer(**connection(kafka).client_options(), enable_auto_commit=False,
                                auto_offset_reset="none")  # records deleted while reading: fail, never skip
    await consumer.start()
    try:
        consumer.assign(list(targets))
        starts, ends = await consumer.beginning_offsets(list(targets)), await consumer.end_offsets(list(targets))
        missing = [f"{tp.topic}[{tp.partition}] holds {starts[tp]}..{ends[tp]}, the bilan was computed up to {offset}"
                   for tp, offset in sorted(targets.items()) if starts[tp] > 0 or ends[tp] < offset]
        if missing:
            raise HistoryMissing("the topics no longer hold every event the bilan was computed from"
                                 f" ({'; '.join(missing)}): it cannot be recomputed")
        await consumer.seek_to_beginning(*targets)
        projector = Projector(generations.BASE, pool)
        pending, read = set(targets), 0
        while pending:
            polled = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            batches = {tp: kept for tp, records in polled.items()
                       if (kept := [r for r in records if r.offset < targets[tp]])}
            if batches:
                await apply_poll(conn, projector, batches, search_path)
                read += sum(len(records) for records in batches.values())
            for tp in list(pending):
                if await consumer.position(tp) >= targets[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
        return read
    finally:
        await consumer.stop()


def differences(stored: Any, recomputed: Any, path: str = "") -> list[str]:  # noqa: ANN401
    """Where two figures differ: `activity.interviews_held`, `breakdowns.month`..."""
    if isinstance(stored, dict) and isinstance(recomputed, dict):
        return [found for key in sorted(set(stored) | set(recomputed))
                for found in differences(stored.get(key), recomputed.get(key), f"{path}.{key}" if path else key)]
    return [] if stored == recomputed else [path]


async def verify(settings: ServiceSettings, year: int) -> dict[str, Any]:
    """Recompute `year`'s figures from the events before its recorded offsets, in a scratch
    schema, and compare their hash with the stored one. Raises HistoryMissing when the
    topics no longer hold those events, NotFound when the year is not frozen."""
    pool = await open_pool(settings)
    schema = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    search_path = f'"{schema}", {generations.BASE}, public'  # as generations.search_path
    try:
        record = await frozen(pool, year)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, schema, generations.migration_files())
                read = await replay(settings.kafka, pool, conn, search_path, record["offsets"])
                async with conn.transaction(isolation="repeatable_read"):
                    await conn.execute(f"SET LOCAL search_path TO {search_path}")
                    await generations.reconcile_anonymised(conn)
                    recomputed = await figures(conn, year, record["figures"])
        finally:
            async with pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await pool.close()
    sha256 = digest(recomputed)
    # Equal only if the recomputed figures give the stored hash AND the stored figures (what
    # GET /v1/reports/frozen and the page serve) still give it too: an edited record is caught.
    intact = digest(record["figures"]) == record["sha256"]
    found = differences(record["figures"], recomputed)
    return {"year": year, "generation": record["generation"], "frozen_at": record["frozen_at"],
            "frozen_by": record["frozen_by"], "offsets": record["offsets"], "records": read,
            "stored": record["sha256"], "recomputed": sha256, "record_intact": intact,
            "equal": intact and sha256 == record["sha256"] and not found,
            "differences": found, "figures": recomputed}


# --- Command line -------------------------------------------------------------------

async def end_offsets(kafka: Kafka, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    tps = await partitions_of(kafka, topics)
    consumer = AIOKafkaConsumer(**connection(kafka).client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        return {(tp.topic, tp.partition): end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def freeze_from_cli(settings: ServiceSettings, year: int) -> dict[str, Any]:
    """Freeze as the HTTP route does, audited under the operator's name (cli:<user>)."""
    try:
        actor = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container's user without a passwd entry)
        actor = "cli:unknown"
    context = Context.caused_by(f"cli:{uuid.uuid4()}", None, actor=actor)
    pool = await open_pool(settings)
    try:
        ends = await end_offsets(settings.kafka, generations.EVENT_TOPICS)

        def entry(outcome: str) -> audit.Entry:
            return replace(context.audit_entry("stats", "freeze_report", outcome), object_id=report_id("frozen", year))

        try:
            async with pool.acquire() as conn, conn.transaction():
                record = await freeze(pool, conn, year, ends, actor)
                await audit.record(conn, entry(audit.ACCEPTED))
        except Rejected as error:
            await audit.record_quietly(pool, entry(audit.rejected(error.kind)))
            raise
        return record
    finally:
        await pool.close()


async def list_from_cli(settings: ServiceSettings) -> list[dict[str, Any]]:
    pool = await open_pool(settings)
    try:
        return await listing(pool)
    finally:
        await pool.close()


def main(argv: list[str]) -> int:
    from services.common.logging import configure_logging  # noqa: PLC0415
    from services.common.service import run_like_a_service  # noqa: PLC0415

    from .service import DEFINITION  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m services.stats.freeze", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("freeze", "verify"):
        sub.add_parser(command).add_argument("year", type=int)
    sub.add_parser("list")
    args = parser.parse_args(argv)
    settings = ServiceSettings.for_service("stats", DEFINITION.default_port)
    configure_logging("stats-freeze", settings.log_level, settings.log_format)
    try:
        if args.command == "list":
            for r in run_like_a_service(list_from_cli(settings)):
                print(f"{r['year']}  generation {r['generation']}  sha256 {r['sha256']}"
                      f"  frozen {r['frozen_at']:%Y-%m-%d %H:%M} by {r['frozen_by']}")
            return 0
        if args.command == "freeze":
            record = run_like_a_service(freeze_from_cli(settings, args.year))
            print(f"{record['year']} frozen at generation {record['generation']}, offsets"
                  f" {json.dumps(record['offsets'])}\nsha256 {record['sha256']}")
            return 0
        result = run_like_a_service(verify(settings, args.year))
    except (Rejected, HistoryMissing) as error:
        print(f"{args.command} refused: {error}", file=sys.stderr)
        return 1
    print(f"bilan {result['year']}, frozen by {result['frozen_by']} at generation {result['generation']},"
          f" recomputed from {result['records']} records up to offsets {json.dumps(result['offsets'])}")
    print(f"stored     sha256 {result['stored']}\nrecomputed sha256 {result['recomputed']}")
    if result["equal"]:
        print("equal: the frozen figures are reproduced")
        return 0
    if not result["record_intact"]:
        print("DIFFERENT: the stored record was altered (its figures no longer give its hash)")
    print("DIFFERENT: " + (", ".join(result["differences"]) or "the figures are the same, the stored hash is not"))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
