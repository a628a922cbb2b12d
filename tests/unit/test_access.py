"""Least privilege as pure rules: token lifetimes, territories and workers, audit rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from alfi_contracts.commands import CancelInterview, RecordInterview
from services.casework import access as casework_access, handlers as casework
from services.common.access import (
    ForbiddenTerritory, ForbiddenWorker, NoRule, Principal, Scope, authorise, authorise_report,
)
from services.common.auth import format_tokens, parse_ttl
from services.common.commands import Context
from services.intake import access as intake_access, handlers as intake
from services.veille import access as veille_access, handlers as veille

EVERYWHERE = Principal("0a1b2c3d", "back office", frozenset({"casework:write"}))
BRETAGNE = Principal("1a2b3c4d", "field", frozenset({"casework:write"}), frozenset({"bretagne", "normandie"}))
FIELD_TOOL = Principal("2a3b4c5d", "tablet", frozenset({"casework:write"}), frozenset({"bretagne"}), "sw-017")


@pytest.mark.parametrize(("text", "expected"), [
    ("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
    ("3600s", timedelta(seconds=3600)), (" 7D ", timedelta(days=7)), ("never", None),
])
def test_ttl_is_a_number_and_a_unit(text, expected):
    assert parse_ttl(text) == expected


@pytest.mark.parametrize("text", ["", "90", "0d", "-1d", "1w", "1.5h", "d", "forever", "90 d"])
def test_ttl_refuses_anything_else(text):
    with pytest.raises(ValueError, match="ttl"):
        parse_ttl(text)


def test_an_unbound_token_acts_everywhere():
    assert not EVERYWHERE.bound
    authorise(EVERYWHERE, Scope("corse", "sw-999"))
    authorise_report(EVERYWHERE, None)


def test_a_bound_token_acts_only_in_its_territories_and_says_which():
    authorise(BRETAGNE, Scope("bretagne"))
    authorise(BRETAGNE, Scope("normandie", "sw-001"))  # not bound to a worker
    with pytest.raises(ForbiddenTerritory) as refused:
        authorise(BRETAGNE, Scope("occitanie"))
    assert refused.value.status == 403 and refused.value.kind == "forbidden_territory"
    assert "bretagne, normandie" in refused.value.detail and "occitanie" in refused.value.detail


def test_a_record_whose_territory_is_unknown_is_refused_to_a_bound_token():
    with pytest.raises(ForbiddenTerritory, match="not known"):
        authorise(BRETAGNE, Scope(None))
    authorise(EVERYWHERE, Scope(None))


def test_a_field_tool_acts_only_under_its_worker():
    authorise(FIELD_TOOL, Scope("bretagne", "sw-017"))
    authorise(FIELD_TOOL, Scope("bretagne"))  # a command naming no worker
    with pytest.raises(ForbiddenWorker) as refused:
        authorise(FIELD_TOOL, Scope("bretagne", "sw-018"))
    assert refused.value.kind == "forbidden_worker" and refused.value.field == "worker_id"
    assert "sw-017" not in refused.value.detail and "sw-018" not in refused.value.detail  # no worker named
    with pytest.raises(ForbiddenTerritory):
        authorise(FIELD_TOOL, Scope("normandie", "sw-017"))


def test_every_territory_a_command_touches_is_checked():
    authorise(BRETAGNE, Scope("bretagne", also=("bretagne",)))
    with pytest.raises(ForbiddenTerritory) as refused:  # a meeting reviewing another territory's situation
        authorise(BRETAGNE, Scope("bretagne", also=("normandie", "occitanie")))
    assert "occitanie" in refused.value.detail
    with pytest.raises(ForbiddenTerritory):
        authorise(BRETAGNE, Scope("bretagne", also=(None,)))  # a situation whose territory is unknown


def test_a_bound_token_reads_only_figures_of_one_of_its_territories():
    authorise_report(BRETAGNE, "normandie")
    for territory in (None, "occitanie"):
        with pytest.raises(ForbiddenTerritory) as refused:
            authorise_report(BRETAGNE, territory)
        assert "bretagne, normandie" in refused.value.detail and refused.value.field == "territory"


@pytest.mark.parametrize(("policy", "handlers"), [
    (intake_access.scope_of, intake.HANDLERS), (casework_access.scope_of, casework.HANDLERS),
    (veille_access.scope_of, veille.HANDLERS),
], ids=["intake", "casework", "veille"])
def test_every_command_has_an_access_rule(policy, handlers):
    assert set(policy.rules) == set(handlers)


async def test_a_command_without_a_rule_is_refused_to_bound_tokens():
    with pytest.raises(NoRule) as refused:
        await intake_access.scope_of(None, "rename_household", None)
    assert refused.value.status == 403 and "rename_household" in refused.value.detail


def test_an_audit_entry_keeps_ids_and_labels_only():
    household, interview = uuid4(), uuid4()
    command = RecordInterview(household_id=household, interview_id=interview, worker_id="sw-017",
                              held_on="2023-02-02", mode="home_visit", topics=["health"], duration_minutes=45)
    entry = Context("corr-1", "http:1", FIELD_TOOL).audit_entry("casework", "record_interview", "accepted", command)
    assert (entry.actor, entry.token_id, entry.household_id, entry.object_id) == (
        "tablet", "2a3b4c5d", household, str(interview))
    assert "health" not in repr(entry) and "home_visit" not in repr(entry)
    from_kafka = Context("corr-2", "t:0:1", actor="kafka:alfi.casework.commands").audit_entry(
        "casework", "cancel_interview", "rejected:not_found",
        CancelInterview(interview_id=interview, cancelled_on="2023-02-03", reason="duplicate"))
    assert (from_kafka.actor, from_kafka.token_id, from_kafka.household_id) == (
        "kafka:alfi.casework.commands", None, None)
    # A path segment that is not an id (a refused scope is audited before validation) is not kept.
    probing = Context("corr-3", "http:3", BRETAGNE).audit_entry(
        "casework", "POST /v1/interviews/{interview_id}/cancellation", "rejected:forbidden_scope",
        {"interview_id": "Madame-Dupont", "household_id": "Dupont"})
    assert (probing.object_id, probing.household_id) == (None, None)


def test_the_token_list_shows_ids_and_bindings_and_states():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tokens = [
        {"id": "0a1b2c3d", "label": "funders", "scopes": ["reports:read"], "territories": ["bretagne"],
         "worker_id": None, "created_at": now - timedelta(days=1), "expires_at": now + timedelta(days=89),
         "revoked_at": None},
        {"id": "9f8e7d6c", "label": "old", "scopes": ["intake:read"], "territories": [], "worker_id": "sw-017",
         "created_at": now - timedelta(days=99), "expires_at": now - timedelta(days=9), "revoked_at": None},
        {"id": "11223344", "label": "gone", "scopes": ["intake:erase"], "territories": [], "worker_id": None,
         "created_at": now - timedelta(days=3), "expires_at": None, "revoked_at": now - timedelta(days=2)},
    ]
    lines = format_tokens(tokens, now).splitlines()
    assert lines[0].split() == ["id", "label", "scopes", "territories", "worker", "created", "expires", "state"]
    assert lines[1].split()[:5] == ["0a1b2c3d", "funders", "reports:read", "bretagne", "-"]
    assert lines[1].endswith("valid") and lines[2].endswith("expired")
    assert "all" in lines[2] and "sw-017" in lines[2] and "never" in lines[3] and "revoked" in lines[3]
