"""The deploy/ files: alert rules under promtool, scrape config, dashboard, compose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.common import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
REPO = DEPLOY.parent
# What tells a fault: each has a dashboard panel and, but for those that detail another
# alert's cause, an alert.
RELIABILITY_METRICS = {
    "alfi_consumer_running", "alfi_consumer_restarts_total", "alfi_consumer_position_offset",
    "alfi_consumer_partition_gap_messages", "alfi_consumer_retries_total", "alfi_kafka_broker_up",
    "alfi_database_up", "alfi_outbox_refused_events_total", "alfi_outbox_set_aside_events",
}
DETAIL_ONLY = {
    "alfi_consumer_restarts_total",  # the reasons behind AlfiConsumerDown
    "alfi_outbox_set_aside_events",  # the rows AlfiOutboxRefused told about, until put back
}
PLATFORM_METRICS = {
    m._name + suffix for m in vars(metrics).values() if hasattr(m, "_name") and hasattr(m, "_type")
    for suffix in ("", "_total", "_bucket", "_count", "_sum")
}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make install` installs Debian's prometheus package"
    return path


def test_alert_rules_pass_their_unit_tests():
    result = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_is_valid_and_names_the_four_services():
    result = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (PROMETHEUS / "prometheus.yml").read_text()
    for target in ("intake:8001", "casework:8002", "veille:8003", "stats:8004"):
        assert target in text


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(alfi_[a-z_]+)", expression))


@pytest.mark.parametrize("source", ["prometheus/alerts.yml", "grafana/dashboards/alfi.json"])
def test_alerts_and_dashboard_use_only_metrics_the_services_export(source: str):
    used = metric_names((DEPLOY / source).read_text())
    assert used, source
    assert used <= PLATFORM_METRICS, used - PLATFORM_METRICS


def test_dashboard_has_a_row_per_service_and_the_flow():
    dashboard = json.loads((DEPLOY / "grafana/dashboards/alfi.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[0].startswith("Flow")
    assert {"intake", "casework", "veille", "stats"} <= set(rows)
    assert all(t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"])


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_has_a_severity_a_summary_a_runbook_and_a_promtool_test():
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    readme = (REPO / "README.md").read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"], name
        assert name in tested, f"{name} has no test in alerts_test.yml"
        assert f"`{name}`" in readme, f"{name} has no entry in README.md's runbook"


def test_reliability_metrics_have_a_panel_in_their_row_and_an_alert():
    dashboard = json.loads((DEPLOY / "grafana/dashboards/alfi.json").read_text())
    start = next(i for i, p in enumerate(dashboard["panels"]) if p["title"].startswith("Reliability"))
    row = []
    for panel in dashboard["panels"][start + 1:]:
        if panel["type"] == "row":
            break
        row.append(panel)
    shown = set().union(*(metric_names(t["expr"]) for p in row for t in p["targets"]))
    assert RELIABILITY_METRICS <= shown, RELIABILITY_METRICS - shown
    alerted = set().union(*(metric_names(rule["expr"]) for rule in alert_rules()))
    assert RELIABILITY_METRICS - DETAIL_ONLY <= alerted


def test_dashboard_panels_have_unique_ids_and_do_not_overlap():
    panels = json.loads((DEPLOY / "grafana/dashboards/alfi.json").read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)


def test_no_metric_label_can_hold_a_person_id():
    forbidden = {"household_id", "household", "worker_id", "worker", "interview_id", "situation_id"}
    for metric in vars(metrics).values():
        if hasattr(metric, "_labelnames"):
            assert not forbidden & set(metric._labelnames), metric._name
