"""The bilan and the funders' view as printable HTML pages, in French: every figure
beside the year before, filters as a form (no JavaScript), charts in SVG, print CSS for
A4; and the data-quality page for managers. Pure: renders the documents of bilan.py and
quality.py."""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from .bilan import SECTIONS_BY_ID, SPLIT_FIGURES, change
from .quality import CHECKS
from .charts import bar_chart
from .labels import MONTHS, PROGRAMME_LABELS, TOTAL, UNKNOWN, value_label

PARIS = ZoneInfo("Europe/Paris")
NBSP = "\u202f"  # thin no-break space: the French thousands separator

CSS = """
 :root { --ink: #1f2933; --rule: #d5dae0; --muted: #5f6b7a; --accent: #3b6ea5; }
 body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 2rem auto; color: var(--ink);
        max-width: 60rem; padding: 0 1rem; font-size: 15px; line-height: 1.35; }
 h1 { font-size: 1.6rem; margin-bottom: .2rem; }
 h2 { font-size: 1.15rem; margin: 1.8rem 0 .4rem; border-bottom: 2px solid var(--accent); padding-bottom: .15rem; }
 p.meta, p.definition, footer { color: var(--muted); font-size: .85rem; margin: .2rem 0 .6rem; }
 th p.definition { font-weight: normal; margin: .15rem 0 0; }
 table { border-collapse: collapse; margin-bottom: .6rem; width: 100%; }
 caption { text-align: left; font-weight: bold; padding: .3rem 0; }
 th, td { padding: .25rem .5rem; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
 tbody th { min-width: 10rem; }
 td, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
 thead th { border-bottom: 1.5px solid var(--ink); font-size: .85rem; }
 table.wrap thead th { white-space: normal; }
 tr.total th, tr.total td { font-weight: bold; border-top: 1.5px solid var(--ink); }
 td.up { color: #1d6b38; } td.down { color: #a33a2b; }
 form.filters { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; background: #f3f5f8;
                padding: .6rem .8rem; margin: .8rem 0; }
 form.filters label { display: flex; flex-direction: column; font-size: .85rem; }
 nav a { margin-right: 1rem; }
 figure { margin: .6rem 0 1rem; break-inside: avoid; }
 section { break-inside: avoid-page; }
 @page { size: A4; margin: 14mm 12mm 16mm; }
 @media print {
   body { margin: 0; max-width: none; padding: 0; font-size: 9.5pt; }
   form.filters, nav { display: none; }
   h2 { break-after: avoid; }
   table, figure { break-inside: avoid; }
   a { color: inherit; text-decoration: none; }
   * { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
 }
"""


def number(value: int | float | None) -> str:
    """French: thin-space thousands, decimal comma; an unknown value is a dash."""
    if value is None:
        return "–"
    text = f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"
    return text.replace(",", NBSP).replace(".", ",")


def evolution(change: int | float | None, percent: float | None) -> str:
    if change is None:
        return "<td>–</td>"
    sign = "+" if change > 0 else ""
    css = "up" if change > 0 else "down" if change < 0 else ""
    text = f"{sign}{number(change)}" + (f" ({sign}{number(percent)} %)" if percent is not None else "")
    return f"<td class='{css}'>{text}</td>"


def moment(value: datetime) -> str:
    """'27 novembre 2026 à 19 h 58' (Paris time)."""
    local = value.astimezone(PARIS)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year} à {local.hour} h {local.minute:02d}"


def data_as_of(state: dict[str, Any]) -> str:
    """The "données arrêtées au" line: the newest event the projections hold, and what
    is still to be applied."""
    times = [t["last_event_time"] for t in state["topics"].values() if t.get("last_event_time")]
    if not times:
        return "Aucune donnée reçue pour l'instant."
    line = f"Données arrêtées au {moment(max(times))} (dernier événement pris en compte)"
    lag = sum(p["lag"] or 0 for p in state["partitions"])
    unknown = any(p["lag"] is None for p in state["partitions"])
    if lag:
        line += f" ; {number(lag)} événement{'s' if lag > 1 else ''} reçu{'s' if lag > 1 else ''} en cours de prise en compte"
    elif unknown:
        line += " ; état du bus indisponible : d'autres événements peuvent être en attente"
    else:
        line += " ; tous les événements reçus sont pris en compte"
    return escape(line) + "."


def _head(title: str) -> str:
    return (f"<!doctype html>\n<html lang='fr'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n")


def _filters(year: int, programme: str | None, territory: str | None, territories: list[str],
             programmes: list[str], on: date | None = None) -> str:
    """The filters form; with `on`, the data-quality page's (its day, within the year)."""
    def options(values: list[str], chosen: str | None, label) -> str:  # noqa: ANN001
        first = f"<option value=''{'' if chosen else ' selected'}>Tous</option>"
        return first + "".join(f"<option value='{escape(v)}'{' selected' if v == chosen else ''}>{escape(label(v))}</option>"
                               for v in values)

    action, day = f"/reports/{year}", ""
    if on is not None:
        action = f"/reports/{year}/quality"
        day = (f"<label>Au<input type='date' name='on' value='{on.isoformat()}' min='{year}-01-01'"
               f" max='{year}-12-31'></label>")
    return (f"<form class='filters' method='get' action='{action}'>{day}"
            f"<label>Dispositif<select name='programme'>"
            f"{options(programmes, programme, lambda v: PROGRAMME_LABELS.get(v, v))}</select></label>"
            f"<label>Territoire<select name='territory'>{options(territories, territory, str)}</select></label>"
            f"<button type='submit'>Afficher</button></form>")


def _scope(document: dict) -> str:
    parts = []
    if document.get("programme"):
        parts.append(PROGRAMME_LABELS.get(document["programme"], document["programme"]))
    if document.get("territory"):
        parts.append(f"territoire {document['territory']}")
    return " — ".join(parts)


def _headline(document: dict) -> str:
    year, previous = document["year"], document["previous_year"]
    rows = "".join(
        f"<tr><th scope='row'>{escape(h['label'])}</th><td>{number(h['value'])}</td><td>{number(h['previous'])}</td>"
        f"{evolution(h['change'], h['change_percent'])}</tr>" for h in document["headline"])
    return (f"<table><caption>Les principaux chiffres</caption><thead><tr><th>Indicateur</th>"
            f"<th class='num'>{year}</th><th class='num'>{previous}</th><th class='num'>Évolution</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


# The split tables' headers, short enough for six columns on A4.
SPLIT_LABELS = {"households_followed": "Ménages suivis", "interviews_held": "Entretiens",
                "situations_escalated": "Situations signalées", "rehousings": "Relogements",
                "rehousings_dalo": "dont DALO"}


def _split_table(document: dict, by: str, title: str, labels: dict[str, str], before: dict[str, str],
                 definition: str, css: str = "") -> str:
    """One row per value of `by` (`document["by_<by>"]`): the figures of `labels` in the
    year, then those of `before` the year before (figure -> column header); `css`: the
    table's class (`wrap`: headers on several lines)."""
    previous = document["previous_year"]
    head = "".join(f"<th class='num'>{escape(label)}</th>" for label in labels.values())
    head += "".join(f"<th class='num'>{escape(label)} {previous}</th>" for label in before.values())
    body = "".join(
        f"<tr><th scope='row'>{escape(value_label(by, r['value']))}</th>"
        + "".join(f"<td>{number(r['figures'][f])}</td>" for f in labels)
        + "".join(f"<td>{number(r['previous'][f])}</td>" for f in before) + "</tr>"
        for r in document[f"by_{by}"] if any(r["figures"].values()) or any(r["previous"].values()))
    table = f"<table class='{css}'>" if css else "<table>"
    return (f"<section><h2>{escape(title)}</h2>{table}<thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table><p class='definition'>{escape(definition)}</p></section>")


def _split(document: dict, by: str, title: str) -> str:
    return _split_table(document, by, title, {f: SPLIT_LABELS[f] for f in SPLIT_FIGURES},
                        {"households_followed": "Ménages suivis"},
                        f"Chiffres {document['year']}, sauf la dernière colonne ; chaque ménage, entretien ou"
                        f" relogement compte dans une seule ligne (DESIGN.md, « Report definitions »).")


def _section(document: dict, data: dict) -> str:
    year, previous = document["year"], document["previous_year"]
    measures = list(data["measures"].items())
    first = measures[0][0]
    head = "".join(f"<th class='num'>{escape(label)} {year}</th>" for _, label in measures)
    head += f"<th class='num'>{escape(measures[0][1])} {previous}</th><th class='num'>Évolution</th>"

    def line(label: str, row: dict, css: str = "") -> str:
        cells = "".join(f"<td>{number(row['figures'][m])}</td>" for m, _ in measures)
        now, before = row["figures"][first], row["previous"][first]
        delta = change(now, before)
        return (f"<tr{css}><th scope='row'>{escape(label)}</th>{cells}<td>{number(before)}</td>"
                f"{evolution(delta['change'], delta['change_percent'])}</tr>")

    body = "".join(line(UNKNOWN if r["value"] is None else value_label(data["dimension"], r["value"]), r)
                   for r in data["rows"])
    body += line(TOTAL, data["total"], " class='total'")
    return (f"<section><h2>{escape(data['title'])}</h2><table><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table><p class='definition'>{escape(data['definition'])}</p></section>")


def render_bilan(document: dict, state: dict, territories: list[str], programmes: list[str],
                 months: list[tuple[str, int]], frozen: dict | None = None) -> str:
    year = document["year"]
    scope = _scope(document)
    title = f"Bilan {year} de l'accompagnement social" + (f" — {scope}" if scope else "")
    households = [(PROGRAMME_LABELS.get(r["value"], r["value"] or UNKNOWN), r["figures"]["households_followed"])
                  for r in document["by_programme"] if r["figures"]["households_followed"]]
    funders = "".join(f"<a href='/reports/{year}/funders/{escape(p)}'>{escape(PROGRAMME_LABELS.get(p, p))}</a>"
                      for p in programmes)
    sections = "".join(_section(document, s) for s in document["sections"] if s["id"] in SECTIONS_BY_ID)
    freeze_line = ""
    if frozen:
        shown = ("les chiffres ci-dessous sont ceux figés" if frozen["shown"] else
                 "les chiffres ci-dessous, filtrés, sont ceux d'aujourd'hui")
        freeze_line = (f"<p class='meta'>Bilan {year} figé le {moment(frozen['frozen_at'])} (empreinte SHA-256 :"
                       f" <code>{escape(frozen['sha256'][:16])}…</code>) ; {shown}.</p>")
    return (_head(title)
            + f"<h1>{escape(title)}</h1>"
            + f"<p class='meta'>{data_as_of(state)}</p>{freeze_line}"
            + "<p class='meta'>Chiffres calculés à partir des événements de la plateforme, comparés à l'année"
              f" {year - 1}. Aucune donnée nominative.</p>"
            + _filters(year, document.get("programme"), document.get("territory"), territories, programmes)
            + (f"<nav>Vues financeurs : {funders}</nav>" if funders else "")
            + f"<nav><a href='/reports/{year}/quality'>Qualité des données</a></nav>"
            + _headline(document)
            + (f"<figure>{bar_chart(f'Ménages suivis par dispositif, {year}', households)}</figure>" if households else "")
            + (f"<figure>{bar_chart(f'Entretiens réalisés par mois, {year}', months)}</figure>" if months else "")
            + _split(document, "programme", "Par dispositif")
            + _split(document, "territory", "Par territoire")
            + sections
            + _follow_up(document)
            + "<footer>Plateforme ALFI — pôle d'accompagnement social. Définitions : README, « stats: the"
              " bilan ».</footer></body></html>\n")


def _defined(document: dict) -> str:
    """Figures each with its definition (`document["figures"]`), beside the year before."""
    rows = "".join(
        f"<tr><th scope='row'>{escape(f['label'])}<p class='definition'>{escape(f['definition'])}</p></th>"
        f"<td>{number(f['value'])}</td><td>{number(f['previous'])}</td>{evolution(f['change'], f['change_percent'])}</tr>"
        for f in document["figures"])
    return (f"<table><thead><tr><th>Indicateur et définition</th><th class='num'>{document['year']}</th>"
            f"<th class='num'>{document['previous_year']}</th><th class='num'>Évolution</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def render_funder(document: dict, state: dict) -> str:
    year, programme = document["year"], document["programme"]
    name = PROGRAMME_LABELS.get(programme, programme)
    title = f"{name} — bilan {year} pour le financeur" + (
        f" — territoire {document['territory']}" if document.get("territory") else "")
    back = f"/reports/{year}?" + urlencode({"programme": programme, **(
        {"territory": document["territory"]} if document.get("territory") else {})})
    return (_head(title) + f"<h1>{escape(title)}</h1><p class='meta'>{data_as_of(state)}</p>"
            + f"<nav><a href='{escape(back)}'>Bilan complet du dispositif</a></nav>"
            + _defined(document)
            + "<footer>Aucune donnée nominative. Heures : durées déclarées des entretiens.</footer></body></html>\n")


# The follow-up and data-quality tables' headers, short enough for A4 (on two lines).
FOLLOW_UP_ACTIONS = {"actions_decided": "Actions décidées", "actions_completed_on_time": "Faites dans le délai",
                     "actions_completed_late": "Faites en retard", "actions_cancelled": "Annulées",
                     "actions_open": "En cours", "actions_overdue": "Échéance dépassée au 31 déc."}
FOLLOW_UP_DELAYS = {"median_days_to_first_review": "Jours jusqu'à la 1re revue",
                    "median_days_to_resolution": "Jours de la 1re revue à la résolution"}
QUALITY_HEADERS = {"no_recent_interview": "Sans entretien récent", "closure_outcome_unknown": "Clôture sans issue",
                   "referent_inactive": "Référent sans activité", "situation_not_reviewed": "Situation jamais examinée"}


def _follow_up(document: dict) -> str:
    """The follow-up of veille decisions: the figures with their definitions, then the
    actions and the delays by programme and by territory."""
    follow_up = document.get("follow_up")
    if not follow_up:
        return ""
    note = ("<p class='meta'>Le suivi des décisions n'a pas été figé avec ce bilan : chiffres"
            " d'aujourd'hui.</p>" if follow_up.get("not_frozen") else "")
    actions = (f"Chiffres {follow_up['year']}, sauf la dernière colonne ; une action compte dans la ligne du"
               f" dispositif et du territoire de son ménage.")
    delays = "Médianes en jours (– : aucune situation à mesurer) ; définitions ci-dessus."
    parts = [_split_table(follow_up, by, f"Suivi des actions {where}", FOLLOW_UP_ACTIONS,
                          {"actions_decided": "Actions décidées"}, actions, "wrap")
             + _split_table(follow_up, by, f"Délais de la veille sociale {where}", FOLLOW_UP_DELAYS,
                            FOLLOW_UP_DELAYS, delays, "wrap")
             for by, where in (("programme", "par dispositif"), ("territory", "par territoire"))]
    return (f"<section><h2>Suivi des décisions de la veille sociale</h2>{note}{_defined(follow_up)}</section>"
            + "".join(parts))


def render_quality(report: dict, state: dict, territories: list[str], programmes: list[str], year: int) -> str:
    """The data-quality report for managers: each check's count and definition, then the
    counts by programme and by territory (no ids: the JSON gives them, with reports:quality)."""
    on = date.fromisoformat(str(report["on"]))
    scope = _scope(report)
    title = f"Qualité des données au {on.day} {MONTHS[on.month - 1]} {on.year}" + (f" — {scope}" if scope else "")
    checks = "".join(
        f"<tr><th scope='row'>{escape(c['label'])}<p class='definition'>{escape(c['definition'])}</p></th>"
        f"<td>{number(c['count'])}</td></tr>" for c in report["checks"])
    head = "".join(f"<th class='num'>{escape(QUALITY_HEADERS[check])}</th>" for check in CHECKS)

    def split(by: str, title: str) -> str:
        body = ""
        for row in report[f"by_{by}"]:
            label = UNKNOWN if row["value"] is None else value_label(by, row["value"])
            cells = "".join(f"<td>{number(row['counts'][check])}</td>" for check in CHECKS)
            body += f"<tr><th scope='row'>{escape(label)}</th>{cells}</tr>"
        return (f"<section><h2>{escape(title)}</h2><table class='wrap'><thead><tr><th></th>{head}</tr></thead>"
                f"<tbody>{body or '<tr><th>Aucun</th></tr>'}</tbody></table></section>")

    return (_head(title) + f"<h1>{escape(title)}</h1><p class='meta'>{data_as_of(state)}</p>"
            + "<p class='meta'>Les enregistrements à vérifier, contrôle par contrôle. Les ménages dont les données"
              " ont été effacées n'y figurent pas. Les identifiants (pseudonymes) de chaque contrôle :"
              " /v1/reports/data-quality?ids=true, avec le droit reports:quality.</p>"
            + _filters(year, report.get("programme"), report.get("territory"), territories, programmes, on)
            + f"<nav><a href='/reports/{year}'>Bilan {year}</a></nav>"
            + f"<table><caption>Contrôles</caption><thead><tr><th>Contrôle et définition</th>"
              f"<th class='num'>À vérifier</th></tr></thead><tbody>{checks}</tbody></table>"
            + split("programme", "Par dispositif") + split("territory", "Par territoire")
            + "<footer>Plateforme ALFI — pôle d'accompagnement social. Aucune donnée nominative.</footer>"
              "</body></html>\n")
