"""When intake last heard of each household from casework and veille.

intake knows its own facts (enrolment, closure); the other contacts it learns from their
events, as every service does (it never reads their tables): an interview held, a
rehousing confirmed, a situation escalated or resolved. `contacts` keeps the latest such
date per household; the retention clock (retention.py) counts from it.

Only identifiers and dates are read, which travel in clear: the consumer needs no key to
open the sealed personal fields. The upsert keeps the greatest date, so a redelivered or
out-of-order event changes nothing it should not. An event that cannot be read goes to
`<topic>.dlq`, as in the replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from alfi_contracts import ContractError
from alfi_contracts.envelope import read
from alfi_contracts.topics import CASEWORK_EVENTS, VEILLE_EVENTS
from services.common.consumer import Batches, TransactionalConsumer
from services.common.deadletters import dead_letter_writer, write_dead_letter

CONSUMER = "alfi-intake-contacts"
TOPICS = (CASEWORK_EVENTS, VEILLE_EVENTS)

# The event types that are a contact with the household, and the field dating it. An
# interview's cancellation is not one; workshops and veille meetings name no household.
CONTACT_DATES = {
    "interview.held": "held_on",
    "rehousing.confirmed": "confirmed_on",
    "situation.escalated": "escalated_on",
    "situation.resolved": "resolved_on",
}


def contact_of(event_type: str, data: Mapping[str, Any]) -> tuple[UUID, date] | None:
    """The household an event is a contact with, and its date; None when it is not one."""
    field = CONTACT_DATES.get(event_type)
    if field is None or data.get("household_id") is None:
        return None
    return data["household_id"], data[field]


def latest_contacts(contacts: list[tuple[UUID, date]]) -> dict[UUID, date]:
    """The latest date per household (one row each for the upsert)."""
    latest: dict[UUID, date] = {}
    for household, on in contacts:
        if household not in latest or on > latest[household]:
            latest[household] = on
    return latest


def contacts_applier(schema: str):  # noqa: ANN201 - a BatchHandler for TransactionalConsumer
    async def apply(conn: asyncpg.Connection, batches: Batches) -> None:
        found = []
        for tp, record in ((tp, r) for tp, records in batches.items() for r in records):
            try:
                envelope, data = read(record.value or b"")
            except ContractError as error:
                await write_dead_letter(conn, schema, tp, record, error.kind, error.detail)
                continue
            contact = contact_of(envelope["type"], data)
            if contact is not None:
                found.append(contact)
        latest = latest_contacts(found)
        if latest:
            await conn.execute(
                "INSERT INTO contacts (household_id, last_contact_on)"
                " SELECT * FROM unnest($1::uuid[], $2::date[])"
                " ON CONFLICT (household_id)"
                " DO UPDATE SET last_contact_on = greatest(contacts.last_contact_on, EXCLUDED.last_contact_on)",
                list(latest), list(latest.values()),
            )

    return apply


def contacts_consumer(runtime) -> TransactionalConsumer:  # noqa: ANN001 - services.common.service.Runtime
    return TransactionalConsumer(runtime.pool, CONSUMER, TOPICS, runtime.settings.kafka,
                                 contacts_applier(runtime.schema), dead_letter=dead_letter_writer(runtime.schema))
