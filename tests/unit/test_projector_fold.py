"""stats' in-memory fold of a poll: one row per entity, whatever the order of its events
in the poll (the database side of the merge is covered by the integration tests)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from alfi_contracts import encode, events as ev, make_event
from alfi_contracts.envelope import read
from services.stats.projector import FOLDS, UPSERTS, Projector, Writer
from tests.integration.events import cancelled, closed, escalated, household, interview

T0 = datetime(2023, 5, 1, tzinfo=UTC)


def folded(timed_events: list[tuple[ev.EventData, datetime]]) -> dict:
    """The projector's path: each event encoded as it travels, read back, folded."""
    rows: dict = defaultdict(dict)
    for data, time in timed_events:
        envelope, fields = read(encode(make_event(data, time=time)))
        FOLDS[envelope["type"]](rows, fields, envelope["time"])
    return rows


def test_every_event_type_has_a_fold():
    assert set(FOLDS) == set(ev.EVENTS_BY_TYPE)


def test_a_household_s_events_in_one_poll_make_one_row_in_any_order():
    enrolled = household(date(2023, 1, 10), worker="sw-001")
    h = enrolled.household_id
    changes = [
        (enrolled, T0),
        (ev.HouseholdReferentChanged(household_id=h, referent_worker_id="sw-002", changed_on=date(2023, 3, 1)),
         T0 + timedelta(minutes=1)),
        (ev.HouseholdReferentChanged(household_id=h, referent_worker_id="sw-003", changed_on=date(2023, 2, 1)),
         T0 + timedelta(minutes=2)),
        (closed(h, date(2023, 6, 30)), T0 + timedelta(minutes=3)),
    ]
    expected = [h, "fnavdl", "bretagne", date(2023, 1, 10), False, False,
                "sw-002", date(2023, 3, 1), T0 + timedelta(minutes=1), date(2023, 6, 30), None]
    for order in itertools.permutations(changes):
        rows = folded(list(order))
        assert sorted(rows) == ["closures", "households"]
        assert rows["households"] == {h: expected}
        assert rows["closures"] == {h: [h, "ended"]}


def test_same_date_referent_changes_are_ordered_by_event_time():
    h = uuid4()
    first = ev.HouseholdReferentChanged(household_id=h, referent_worker_id="sw-004", changed_on=date(2023, 3, 1))
    second = ev.HouseholdReferentChanged(household_id=h, referent_worker_id="sw-005", changed_on=date(2023, 3, 1))
    for order in ([(first, T0), (second, T0 + timedelta(seconds=1))],
                  [(second, T0 + timedelta(seconds=1)), (first, T0)]):
        row = folded(order)["households"][h]
        assert row[6:9] == ["sw-005", date(2023, 3, 1), T0 + timedelta(seconds=1)]
        assert row[1:6] == [None] * 5  # no enrolment in this poll: the stored facts stay


@pytest.mark.parametrize("cancel_first", [False, True])
def test_an_interview_and_its_cancellation_merge(cancel_first):
    h = uuid4()
    held = interview(h, date(2023, 4, 2), worker="sw-007")
    cancel = cancelled(held.interview_id, h, date(2023, 4, 3))
    order = [(cancel, T0), (held, T0)] if cancel_first else [(held, T0), (cancel, T0)]
    assert folded(order)["interviews"] == {held.interview_id: [held.interview_id, h, "sw-007", date(2023, 4, 2), True,
                                                               held.mode.value, ",".join(sorted(held.topics)),
                                                               held.duration_minutes]}


def test_a_cancellation_alone_carries_its_household_and_no_held_facts():
    h, i = uuid4(), uuid4()
    assert folded([(cancelled(i, h, date(2023, 4, 3)), T0)])["interviews"] == {i: [i, h, None, None, True, None, None, None]}


def test_a_resolution_before_its_escalation_in_one_poll_merges():
    h = uuid4()
    up = escalated(h, date(2023, 1, 5))
    down = ev.SituationResolved(situation_id=up.situation_id, household_id=h, resolved_on=date(2023, 2, 1),
                                outcome="stabilised")
    rows = folded([(down, T0), (up, T0)])
    assert rows["situations"] == {up.situation_id: [up.situation_id, h, date(2023, 1, 5), date(2023, 2, 1)]}
    assert rows["situation_details"] == {up.situation_id: [up.situation_id, h, "serious", "isolation", "stabilised"]}


def test_the_bilan_s_personal_facts_are_folded_as_slugs():
    h = uuid4()
    held = interview(h, date(2023, 4, 2), mode="home_visit", topics=("rights", "budget"), minutes=45)
    up = escalated(h, date(2023, 1, 5), severity="critical", reasons=("violence", "health"))
    rows = folded([(held, T0), (up, T0), (closed(h, date(2023, 6, 1), outcome="rehoused"), T0)])
    assert rows["interviews"][held.interview_id][-3:] == ["home_visit", "budget,rights", 45]
    assert rows["situation_details"] == {up.situation_id: [up.situation_id, h, "critical", "health,violence", None]}
    assert rows["closures"] == {h: [h, "rehoused"]}


def test_personal_facts_read_without_their_key_are_unknown_not_dropped():
    """A copy read once the household's key was deleted: the public facts still count, the
    personal ones are None (which keeps what the projection already holds)."""
    h = uuid4()
    held = interview(h, date(2023, 4, 2))
    rows: dict = defaultdict(dict)
    envelope, fields = read(encode(make_event(held, time=T0, seal=lambda data, aad, clear: "v1." + "A" * 40)), lambda *a: None)
    FOLDS[envelope["type"]](rows, fields, envelope["time"])
    assert rows["interviews"][held.interview_id] == [held.interview_id, h, None, date(2023, 4, 2), False,
                                                     None, None, None]


def test_a_poll_is_merged_from_arrays_in_column_order_or_from_staging_tables():
    writer = Writer({table: {c: "text" for c in columns} for table, (columns, _, _) in UPSERTS.items()})
    for table, (columns, _, _) in UPSERTS.items():
        assert f"staged_{table} ({', '.join(f'{c} text' for c in columns)});" in writer.staging
    staged = writer.merge(("interviews", "freshness"), staged=True)
    assert staged.count("INSERT INTO") == 2 and "FROM pg_temp.staged_interviews ON CONFLICT (interview_id)" in staged
    assert "$1" not in staged and "staged_households" not in staged
    arrays = writer.merge(("interviews", "freshness"), staged=False)
    count = len(UPSERTS["interviews"][0]) + len(UPSERTS["freshness"][0])
    assert f"${count}::text[]" in arrays and f"${count + 1}" not in arrays
    assert "unnest($1::text[], $2::text[]" in arrays and "staged_" not in arrays


async def test_freshness_rows_come_in_topic_order_whatever_the_poll_s_order():
    """Workers sharing the partitions (ALFI_WORKERS) lock these shared rows in one order."""
    h = uuid4()
    batches = {}
    for offset, data in enumerate([escalated(h, date(2023, 1, 5)), interview(h, date(2023, 4, 2)),
                                   household(date(2023, 1, 10))]):
        tp = TopicPartition(f"alfi.{data.service}.events", 0)
        record = ConsumerRecord(tp.topic, 0, offset, 0, 0, data.key, encode(make_event(data, time=T0)), None, 0, 0, [])
        batches[tp] = [record]
    prepared = await Projector("stats").prepare(batches)
    assert list(prepared.rows["freshness"]) == ["alfi.casework.events", "alfi.intake.events", "alfi.veille.events"]
    assert not prepared.letters


def decided(household_id, situation_id, decided_on: date, due_on: date, action_id=None):  # noqa: ANN001, ANN201
    return ev.ActionDecided(action_id=action_id or uuid4(), meeting_id=uuid4(), situation_id=situation_id,
                            household_id=household_id, decided_on=decided_on, kind="home_visit",
                            owner_worker_id="sw-008", due_on=due_on)


def test_an_action_s_decision_and_its_end_make_one_row_in_any_order():
    h, s = uuid4(), uuid4()
    action = decided(h, s, date(2023, 3, 1), date(2023, 4, 1))
    done = ev.ActionCompleted(action_id=action.action_id, household_id=h, completed_on=date(2023, 4, 9))
    dropped = ev.ActionCancelled(action_id=action.action_id, household_id=h, cancelled_on=date(2023, 5, 2),
                                 reason="no_longer_needed")
    expected = [action.action_id, h, s, action.meeting_id, date(2023, 3, 1), date(2023, 4, 1), date(2023, 4, 9),
                date(2023, 5, 2)]
    for order in itertools.permutations([(action, T0), (done, T0), (dropped, T0)]):
        assert folded(list(order))["actions"] == {action.action_id: expected}


@pytest.mark.parametrize("ending", ["completed", "cancelled"])
def test_an_action_s_end_alone_carries_its_household_and_no_decision(ending):
    h, a = uuid4(), uuid4()
    event = (ev.ActionCompleted(action_id=a, household_id=h, completed_on=date(2023, 4, 9)) if ending == "completed"
             else ev.ActionCancelled(action_id=a, household_id=h, cancelled_on=date(2023, 4, 9), reason="other"))
    row = folded([(event, T0)])["actions"][a]
    assert row[:6] == [a, h, None, None, None, None]
    assert row[6:] == ([date(2023, 4, 9), None] if ending == "completed" else [None, date(2023, 4, 9)])


def test_an_action_read_without_its_key_keeps_every_fact_stats_projects():
    """Kind, owner and cancellation reason are sealed; no figure needs them."""
    h, s = uuid4(), uuid4()
    action = decided(h, s, date(2023, 3, 1), date(2023, 4, 1))
    rows: dict = defaultdict(dict)
    envelope, fields = read(encode(make_event(action, time=T0, seal=lambda data, aad, clear: "v1." + "A" * 40)),
                            lambda *a: None)
    FOLDS[envelope["type"]](rows, fields, envelope["time"])
    assert rows["actions"][action.action_id] == [action.action_id, h, s, action.meeting_id, date(2023, 3, 1),
                                                 date(2023, 4, 1), None, None]


def test_a_re_review_is_one_row_per_situation_and_meeting():
    h, s, m = uuid4(), uuid4(), uuid4()
    scheduled = ev.ReReviewScheduled(situation_id=s, household_id=h, meeting_id=m, scheduled_on=date(2023, 3, 1),
                                     review_on=date(2023, 6, 1))
    assert folded([(scheduled, T0), (scheduled, T0)])["re_reviews"] == {
        (s, m): [s, m, h, date(2023, 3, 1), date(2023, 6, 1)]}
