"""The French words of the exports: month names, vocabulary labels, the French table and
its CSV (services/stats/labels.py, exports.py)."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from services.stats import exports
from services.stats.labels import month_label, value_label
from services.stats.reports import FIGURES


def test_months_are_french_names_with_the_year():
    assert month_label("2023-01") == "janvier 2023"
    assert month_label("1999-08") == "août 1999"
    assert month_label("2024-12") == "décembre 2024"
    assert value_label("month", "2023-02") == "février 2023"


def test_vocabulary_values_have_labels_and_names_stay_as_they_are():
    assert value_label("programme", "jeunes_ase") == "Jeunes issus de l'ASE"
    assert value_label("workshop_theme", "energy_saving") == "Économies d'énergie"
    assert value_label("workshop_theme", "other") == "Autre"
    assert value_label("territory", "bretagne") == "bretagne"
    assert value_label("landlord", "antin-residences") == "antin-residences"
    assert value_label("worker", "sw-101") == "sw-101"
    assert value_label("programme", "not_yet_labelled") == "not_yet_labelled"
    assert value_label("programme", None) == value_label("worker", "") == "Non applicable"


def test_the_french_csv_opens_in_columns_with_a_total_line():
    rows = [{"workshop_theme": "budget", **dict.fromkeys(FIGURES, 0), "workshops_held": 2},
            {"workshop_theme": None, **dict.fromkeys(FIGURES, 1), "workshops_held": 0}]
    totals = {"year": 1999, **dict.fromkeys(FIGURES, 1), "workshops_held": 2}
    table = exports.french_table("workshop_theme", rows, totals)
    body = exports.french_csv(table)
    assert body.startswith(b"\xef\xbb\xbf") and body.endswith(b"\r\n")
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert parsed[0][:3] == ["Thème d'atelier", "Ménages suivis", "Entretiens réalisés"]
    assert [line[0] for line in parsed[1:]] == ["Budget", "Non applicable", "Total"]
    assert parsed == [[str(cell) for cell in line] for line in table]
    sheet = load_workbook(io.BytesIO(exports.xlsx(table, "Bilan 1999"))).active
    assert [list(line) for line in sheet.iter_rows(values_only=True)] == table


def test_every_vocabulary_of_the_bilan_has_a_french_label_for_every_value():
    from alfi_contracts import vocabulary as v
    from services.stats.labels import _VALUE_LABELS

    vocabularies = {"programme": v.Programme, "workshop_theme": v.WorkshopTheme, "mode": v.InterviewMode,
                    "topic": v.InterviewTopic, "severity": v.Severity, "reason": v.SituationReason,
                    "decision": v.ReviewDecision, "closure_outcome": v.ClosureOutcome}
    for dimension, vocabulary in vocabularies.items():
        assert set(_VALUE_LABELS[dimension]) == {value.value for value in vocabulary}, dimension
        assert all(value_label(dimension, value.value) != value.value for value in vocabulary), dimension
