"""The retention clock's rules over plain values: when a household is due, what is a
contact, the settings, and the schedule (the database side: tests/integration/test_retention.py)."""

from __future__ import annotations

import asyncio
from datetime import date
from uuid import uuid4

import pytest

from alfi_contracts import encode, events as ev, make_event
from alfi_contracts.envelope import read
from services.intake.contacts import contact_of, latest_contacts
from services.intake.retention import RetentionClock, RetentionSettings, cutoff, is_due, last_contact
from tests.integration.events import cancelled, closed, escalated, household, interview, meeting, rehousing, workshop


def test_cutoff_is_the_period_in_days_before_today():
    assert cutoff(date(2026, 11, 27), 730) == date(2024, 11, 27)
    # 730 days, not two calendar years: a leap day in between shifts the date.
    assert cutoff(date(2025, 3, 1), 730) == date(2023, 3, 2)
    assert cutoff(date(2024, 2, 29), 1) == date(2024, 2, 28)
    assert cutoff(date(2024, 3, 1), 366) == date(2023, 3, 1)


def test_due_only_once_the_whole_period_has_passed():
    today = date(2026, 11, 27)
    assert not is_due(date(2024, 11, 27), today, 730)  # the last day it is kept
    assert is_due(date(2024, 11, 26), today, 730)
    assert not is_due(today, today, 730)
    assert not is_due(date(2026, 11, 26), today, 1)  # kept one day after the contact
    assert is_due(date(2026, 11, 25), today, 1)


def test_last_contact_is_the_latest_known_date():
    enrolled = date(2020, 1, 15)
    assert last_contact(enrolled, None, None) == enrolled
    assert last_contact(enrolled, date(2022, 1, 10), None) == date(2022, 1, 10)
    assert last_contact(enrolled, None, date(2021, 3, 10)) == date(2021, 3, 10)
    assert last_contact(enrolled, date(2022, 1, 10), date(2021, 3, 10)) == date(2022, 1, 10)
    assert last_contact(enrolled, date(2021, 1, 10), date(2023, 4, 1)) == date(2023, 4, 1)


def read_back(data: ev.EventData) -> tuple[str, dict]:
    """As the consumer reads it: encoded, personal fields sealed, read without a key."""
    envelope, fields = read(encode(make_event(data, seal=lambda *_: "v1." + "A" * 40)))
    return envelope["type"], fields


def test_contacts_are_interviews_rehousings_and_situations_with_their_dates():
    h = uuid4()
    assert contact_of(*read_back(interview(h, date(2021, 3, 10)))) == (h, date(2021, 3, 10))
    assert contact_of(*read_back(rehousing(h, date(2022, 5, 2), youth=True, dalo=False))) == (h, date(2022, 5, 2))
    assert contact_of(*read_back(escalated(h, date(2022, 6, 1)))) == (h, date(2022, 6, 1))
    resolved = ev.SituationResolved(situation_id=uuid4(), household_id=h, resolved_on=date(2022, 9, 1),
                                    outcome="stabilised")
    assert contact_of(*read_back(resolved)) == (h, date(2022, 9, 1))


def test_a_cancellation_workshops_meetings_and_intake_s_own_events_are_not_contacts():
    h = uuid4()
    assert contact_of(*read_back(cancelled(uuid4(), h, date(2023, 5, 20)))) is None
    assert contact_of(*read_back(workshop(date(2023, 4, 12), 9))) is None
    assert contact_of(*read_back(meeting(date(2023, 5, 10), [uuid4()]))) is None
    assert contact_of(*read_back(household(date(2023, 1, 9)))) is None  # intake knows its own
    assert contact_of(*read_back(closed(h, date(2023, 6, 1)))) is None


def test_latest_contacts_keeps_the_greatest_date_per_household_in_any_order():
    a, b = uuid4(), uuid4()
    contacts = [(a, date(2021, 3, 10)), (b, date(2020, 1, 1)), (a, date(2023, 4, 1)), (a, date(2022, 1, 1))]
    assert latest_contacts(contacts) == {a: date(2023, 4, 1), b: date(2020, 1, 1)}
    assert latest_contacts(list(reversed(contacts))) == {a: date(2023, 4, 1), b: date(2020, 1, 1)}
    assert latest_contacts([]) == {}


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch):
    for name in ("DAYS", "INTERVAL_SECONDS", "ENABLED", "FIRST_RUN_SECONDS"):
        monkeypatch.delenv(f"ALFI_RETENTION_{name}", raising=False)
    defaults = RetentionSettings()
    assert (defaults.enabled, defaults.days, defaults.interval_seconds) == (True, 730, 86400)
    monkeypatch.setenv("ALFI_RETENTION_DAYS", "365")
    monkeypatch.setenv("ALFI_RETENTION_INTERVAL_SECONDS", "3600")
    monkeypatch.setenv("ALFI_RETENTION_ENABLED", "false")
    assert RetentionSettings().model_dump(include={"enabled", "days", "interval_seconds"}) == {
        "enabled": False, "days": 365, "interval_seconds": 3600}
    monkeypatch.setenv("ALFI_RETENTION_DAYS", "0")
    with pytest.raises(ValueError):
        RetentionSettings()


async def test_the_clock_runs_again_after_a_failed_run_and_stops_when_asked():
    calls = []

    async def run_once() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise RuntimeError("the database said no")

    clock = RetentionClock(run_once, first_run_seconds=0.01, interval_seconds=0.02)
    clock.start()
    while len(calls) < 3:
        await asyncio.sleep(0.01)
    await clock.stop()
    assert clock.task.cancelled()
    ran = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == ran  # stopped: no more runs
