"""The deploy/ files: alert rules under promtool, scrape config, dashboard, compose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from services.common import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
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


def test_no_metric_label_can_hold_a_person_id():
    forbidden = {"household_id", "household", "worker_id", "worker", "interview_id", "situation_id"}
    for metric in vars(metrics).values():
        if hasattr(metric, "_labelnames"):
            assert not forbidden & set(metric._labelnames), metric._name
