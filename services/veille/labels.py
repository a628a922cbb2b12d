"""The French words of the veille agenda: its CSV headers and its labels. Pure.

Action kinds are labelled here until a shared place holds the platform's French labels
(stats has its own in services/stats/labels.py)."""

from __future__ import annotations

ACTION_KIND_LABELS = {
    "home_visit": "Visite à domicile", "partner_referral": "Orientation vers un partenaire",
    "landlord_contact": "Contact avec le bailleur", "rights_application": "Demande d'ouverture de droits",
    "case_conference": "Réunion de synthèse", "emergency_support": "Aide d'urgence", "other": "Autre",
}
# The agenda's three parts, as its CSV's first column names them.
SECTION_LABELS = {
    "unreviewed_situations": "Situation jamais examinée",
    "re_reviews": "Réexamen prévu",
    "actions": "Action décidée",
}
# The agenda's CSV columns: (field of an item, French header).
AGENDA_COLUMNS = (
    ("section", "Rubrique"),
    ("situation_id", "Situation"),
    ("household_id", "Ménage"),
    ("escalated_on", "Signalée le"),
    ("re_review_on", "À réexaminer à partir du"),
    ("action_id", "Action"),
    ("kind", "Type d'action"),
    ("owner_worker_id", "Responsable de l'action"),
    ("decided_on", "Décidée le"),
    ("due_on", "Échéance"),
    ("waiting_days", "Jours d'attente"),
    ("days_overdue", "Jours de retard (négatif : à venir)"),
    ("overdue", "En retard"),
)
YES, NO = "oui", "non"
# An action kind cleared by an erasure (its household's are never on the agenda, but a
# label for every value keeps the table whole).
UNKNOWN = "Non renseigné"


def date_label(value) -> str:  # noqa: ANN001 - a date or None
    """A date as French readers write it (31/12/2023); empty when there is none."""
    return value.strftime("%d/%m/%Y") if value is not None else ""
