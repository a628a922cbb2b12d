"""Build contract events and put them on the real topics, for stats' tests."""

from __future__ import annotations

from datetime import date
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from alfi_contracts import encode, events as ev, make_event
from alfi_contracts.topics import events_topic
from services.common.kafka import ensure_topics


def household(enrolled_on: date, programme: str = "fnavdl", territory: str = "bretagne",
              worker: str = "sw-001", youth: bool = False, dalo: bool = False, household_id: UUID | None = None):
    return ev.HouseholdEnrolled(household_id=household_id or uuid4(), programme=programme, territory=territory,
                                referent_worker_id=worker, enrolled_on=enrolled_on, youth=youth,
                                dalo_priority=dalo, adults=1, children=0)


def closed(household_id: UUID, on: date, outcome: str = "ended"):
    return ev.HouseholdAccompanimentClosed(household_id=household_id, closed_on=on, outcome=outcome)


def interview(household_id: UUID, on: date, worker: str = "sw-001", interview_id: UUID | None = None,
              mode: str = "office", topics: tuple[str, ...] = ("housing",), minutes: int = 30):
    return ev.InterviewHeld(interview_id=interview_id or uuid4(), household_id=household_id, worker_id=worker,
                            held_on=on, mode=mode, topics=list(topics), duration_minutes=minutes)


def cancelled(interview_id: UUID, household_id: UUID, on: date):
    return ev.InterviewCancelled(interview_id=interview_id, household_id=household_id, cancelled_on=on,
                                 reason="entered_in_error")


def escalated(household_id: UUID, on: date, situation_id: UUID | None = None, severity: str = "serious",
              reasons: tuple[str, ...] = ("isolation",)):
    return ev.SituationEscalated(situation_id=situation_id or uuid4(), household_id=household_id,
                                 escalated_on=on, severity=severity, reasons=list(reasons))


def meeting(on: date, situations: list[UUID], territory: str = "bretagne", decision: str = "monitor"):
    return ev.VeilleMeetingHeld(meeting_id=uuid4(), held_on=on, territory=territory,
                                reviewed=[{"situation_id": s, "decision": decision} for s in situations])


def workshop(on: date, participants: int, theme: str = "budget"):
    return ev.WorkshopHeld(workshop_id=uuid4(), residence="rja-rennes", territory="bretagne", theme=theme,
                           held_on=on, participants=participants)


def rehousing(household_id: UUID, on: date, youth: bool, dalo: bool, landlord: str = "antin-residences"):
    return ev.RehousingConfirmed(rehousing_id=uuid4(), household_id=household_id, landlord=landlord,
                                 confirmed_on=on, youth=youth, dalo_priority=dalo)


async def publish(bootstrap: str, items: list, topic: str | None = None) -> list:
    """Publish events (EventData, or ready CloudEvents paired with their data) to their
    topics (or all to `topic`)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    sent = []
    try:
        for item in items:
            event, data = item if isinstance(item, tuple) else (make_event(item), item)
            await producer.send(topic or events_topic(data.service), encode(event), key=data.key)
            sent.append(event)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def topic_without_its_first_record(bootstrap: str, year: int) -> str:
    """A new one-partition topic of three enrolments whose first record was deleted (as
    retention or an operator would): its history no longer starts at offset 0."""
    topic = f"alfi.test{uuid4().hex[:6]}.events"
    await ensure_topics(bootstrap, [topic], partitions=1)
    await publish(bootstrap, [household(date(year, 1, 1)) for _ in range(3)], topic=topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=1)})
    finally:
        await admin.close()
    return topic
