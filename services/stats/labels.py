"""The French words of the bilan: figure and dimension headers, vocabulary labels, month
names. Pure, shared by the printable page and the spreadsheet exports."""

from __future__ import annotations

FIGURE_LABELS = {
    "households_followed": "Ménages suivis", "interviews_held": "Entretiens réalisés",
    "social_workers_active": "Travailleurs sociaux actifs", "veille_meetings": "Réunions de veille sociale",
    "situations_reviewed": "Situations abordées en veille", "situations_escalated": "Situations signalées",
    "workshops_held": "Ateliers collectifs", "workshop_participants": "Participations aux ateliers",
    "rehousings": "Relogements dans le parc social", "rehousings_dalo": "… dont publics prioritaires DALO",
    "rehousings_youth": "… dont jeunes",
}
DIMENSION_LABELS = {
    "programme": "Programme", "territory": "Territoire", "month": "Mois", "worker": "Travailleur social",
    "workshop_theme": "Thème d'atelier", "landlord": "Bailleur",
}
PROGRAMME_LABELS = {
    "pension_de_famille": "Pensions de famille", "jeunes_ase": "Jeunes issus de l'ASE",
    "residence_jeunes_actifs": "Résidences jeunes actifs", "locataires_parc_social": "Locataires du parc social",
    "menages_ukrainiens": "Ménages ukrainiens", "masp2": "MASP2", "mous": "MOUS", "fnavdl": "FNAVDL",
}
WORKSHOP_THEME_LABELS = {
    "budget": "Budget", "energy_saving": "Économies d'énergie", "health_prevention": "Prévention santé",
    "food_insecurity": "Précarité alimentaire", "housing_search": "Recherche de logement", "other": "Autre",
}
MODE_LABELS = {"office": "Au bureau", "home_visit": "Visite à domicile", "phone": "Par téléphone",
               "video": "En visioconférence", "outside": "À l'extérieur"}
TOPIC_LABELS = {
    "rights": "Accès aux droits", "budget": "Budget", "housing": "Logement", "health": "Santé",
    "employment": "Emploi", "childcare": "Garde d'enfants", "administrative": "Démarches administratives",
    "energy": "Énergie", "food": "Alimentation", "language": "Langue", "other": "Autre",
}
SEVERITY_LABELS = {"concern": "Préoccupante", "serious": "Grave", "critical": "Critique"}
REASON_LABELS = {
    "health": "Santé", "rent_arrears": "Impayés de loyer", "isolation": "Isolement",
    "child_protection": "Protection de l'enfance", "violence": "Violences",
    "neighbourhood_conflict": "Troubles de voisinage", "housing_conditions": "Conditions de logement",
    "other": "Autre",
}
DECISION_LABELS = {"monitor": "Veille maintenue", "refer_partner": "Orientation vers un partenaire",
                   "urgent_action": "Action urgente", "close": "Clôture de la situation"}
CLOSURE_OUTCOME_LABELS = {"rehoused": "Relogé", "handed_over": "Relais à un autre service",
                          "moved_away": "Départ du territoire", "ended": "Fin de l'accompagnement",
                          "other": "Autre"}
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin",
          "juillet", "août", "septembre", "octobre", "novembre", "décembre")
# The row of facts a dimension does not apply to (a workshop has no programme, a meeting
# no worker) or whose value is unknown (a worker id sealed after its key was deleted).
NOT_APPLICABLE = "Non applicable"
TOTAL = "Total"

# A personal fact read after its household's key was deleted, before stats had kept it.
UNKNOWN = "Non renseigné"

_VALUE_LABELS = {"programme": PROGRAMME_LABELS, "workshop_theme": WORKSHOP_THEME_LABELS, "mode": MODE_LABELS,
                 "topic": TOPIC_LABELS, "severity": SEVERITY_LABELS, "reason": REASON_LABELS,
                 "decision": DECISION_LABELS, "closure_outcome": CLOSURE_OUTCOME_LABELS}


def month_label(month: str) -> str:
    """'2023-01' -> 'janvier 2023'."""
    year, number = month.split("-")
    return f"{MONTHS[int(number) - 1]} {year}"


def value_label(by: str, value: str | None) -> str:
    """A breakdown row's dimension value as people read it; territories, landlords and
    workers are names already and stay as they are, as does a slug with no label yet."""
    if value is None or value == "":
        return NOT_APPLICABLE
    if by == "month":
        return month_label(value)
    return _VALUE_LABELS.get(by, {}).get(value, value)
