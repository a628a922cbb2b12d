"""A realistic 2022-2024 for the association, whose 2023 is exactly the bilan.

Deterministic (seeded; ids are uuid5 of a name), so sending it twice changes nothing:
every create carries its id and the same content, which the services answer with 200.
Every command respects the services' rules (dates inside the household's accompaniment,
meetings after escalations, one rehousing per household...).

2023 targets (the bilan): 1,845 households followed, 9,618 interviews by 30 social
workers, 88 veille meetings reviewing 298 distinct situations, 110 workshops, 27 young
people rehoused by Antin Résidences and CPH Arcade-VYV, 11 of them DALO priority.

Follow-up (issue 14): about half of the reviews that do not close their situation decide
one or two actions (kinds weighted; the household's referent or another worker owns
each, due 7 to 45 days after the meeting) and about three in ten ask for a re-review 30
to 90 days later. The "follow-up" phase, sent after the meetings, completes most actions
(some after their due date), cancels a few and leaves the rest open. These draws come
from a random generator of their own, so every other command, and so every bilan figure,
is what it was before follow-up existed. `Dataset.actions()` and `Dataset.re_reviews()`
read them back from the commands, for tests to compute what to expect.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

BILAN_2023 = {
    "households_followed": 1845,
    "interviews_held": 9618,
    "social_workers_active": 30,
    "veille_meetings": 88,
    "situations_reviewed": 298,
    "workshops_held": 110,
    "rehousings": 27,
    "rehousings_dalo": 11,
    "rehousings_youth": 27,
}

Y22, Y23, Y24 = (date(2022, 1, 1), date(2022, 12, 31)), (date(2023, 1, 1), date(2023, 12, 31)), (
    date(2024, 1, 1), date(2024, 12, 31))
PROGRAMMES = {
    "pension_de_famille": 12, "jeunes_ase": 10, "residence_jeunes_actifs": 15, "locataires_parc_social": 30,
    "menages_ukrainiens": 8, "masp2": 8, "mous": 7, "fnavdl": 10,
}
YOUTH_PROGRAMMES = {"jeunes_ase", "residence_jeunes_actifs"}
TERRITORIES = ["ile-de-france", "bretagne", "hauts-de-france", "normandie"]
RESIDENCES = {"rja-paris-belleville": "ile-de-france", "rja-rennes-colombier": "bretagne",
              "rja-lille-vauban": "hauts-de-france", "rja-caen-sud": "normandie"}
LANDLORDS = ["antin-residences", "cph-arcade-vyv"]
WORKERS = [f"sw-{n:03d}" for n in range(1, 31)]
FORMER_WORKERS = ["sw-031", "sw-032"]  # left during 2022
THEMES = {"budget": 30, "energy_saving": 25, "health_prevention": 20, "food_insecurity": 15, "housing_search": 25,
          "other": 5}
TOPICS = ["rights", "budget", "housing", "health", "employment", "childcare", "administrative", "energy",
          "food", "language", "other"]
MODES = {"office": 45, "home_visit": 30, "phone": 15, "video": 3, "outside": 7}
ACTION_KINDS = {"home_visit": 25, "partner_referral": 25, "landlord_contact": 15, "rights_application": 15,
                "case_conference": 10, "emergency_support": 5, "other": 5}
CANCELLATION_REASONS = {"no_longer_needed": 45, "situation_resolved": 35, "entered_in_error": 10, "other": 10}


def demo_id(kind: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alfi-demo:{kind}:{n}"))


@dataclass
class Household:
    id: str
    programme: str
    territory: str
    referent: str
    enrolled_on: date
    youth: bool
    dalo: bool
    closed_on: date | None = None
    outcome: str = "ended"

    def window(self, span: tuple[date, date]) -> tuple[date, date] | None:
        start = max(self.enrolled_on, span[0])
        end = min(self.closed_on or span[1], span[1])
        return (start, end) if start <= end else None


@dataclass(frozen=True)
class Action:
    """An action a demo meeting decides, and what the follow-up phase does with it (None:
    left open). `territory` and `programme` are its household's."""

    action_id: str
    meeting_id: str
    situation_id: str
    household_id: str
    territory: str
    programme: str
    kind: str
    owner_worker_id: str
    decided_on: date
    due_on: date
    completed_on: date | None
    cancelled_on: date | None


@dataclass(frozen=True)
class ReReview:
    """A re-review a demo meeting asks for (`territory`, `programme`: its household's)."""

    situation_id: str
    household_id: str
    territory: str
    programme: str
    meeting_id: str
    scheduled_on: date
    review_on: date


@dataclass
class Dataset:
    """Commands in sending order: (phase, service, method, path, body)."""

    households: list[Household] = field(default_factory=list)
    phases: dict[str, list[tuple[str, str, str, dict | None]]] = field(default_factory=dict)
    expected: Counter = field(default_factory=Counter)

    def add(self, phase: str, service: str, method: str, path: str, body: dict | None = None) -> None:
        self.phases.setdefault(phase, []).append((service, method, path, body))

    def bodies(self, phase: str, path: str) -> list[dict]:
        return [body for _, _, p, body in self.phases.get(phase, []) if p == path]

    def _reviews(self) -> Iterator[tuple[dict, dict, Household]]:
        """Each meeting's reviews, with the household of the situation reviewed."""
        households = {h.id: h for h in self.households}
        household_of = {body["situation_id"]: households[body["household_id"]]
                        for body in self.bodies("cases", "/v1/situations")}
        for meeting in self.bodies("meetings", "/v1/meetings"):
            for review in meeting["reviewed"]:
                yield meeting, review, household_of[review["situation_id"]]

    def actions(self) -> list[Action]:
        """Every action the meetings decide, in the order decided, with what the follow-up
        phase does with it, read back from the commands: what a test counts its expected
        figures from (decided, completed, cancelled, open or due at a date, by territory
        or programme)."""
        closing = {path.split("/")[3]: body for _, _, path, body in self.phases.get("follow-up", [])}
        actions = []
        for meeting, review, household in self._reviews():
            for action in review.get("actions", []):
                closed = closing.get(action["action_id"], {})
                actions.append(Action(
                    action_id=action["action_id"], meeting_id=meeting["meeting_id"],
                    situation_id=review["situation_id"], household_id=household.id, territory=household.territory,
                    programme=household.programme, kind=action["kind"], owner_worker_id=action["owner_worker_id"],
                    decided_on=date.fromisoformat(meeting["held_on"]), due_on=date.fromisoformat(action["due_on"]),
                    completed_on=_date(closed.get("completed_on")), cancelled_on=_date(closed.get("cancelled_on"))))
        return actions

    def re_reviews(self) -> list[ReReview]:
        """Every re-review the meetings ask for, read back from the meetings' commands."""
        return [ReReview(situation_id=review["situation_id"], household_id=household.id,
                         territory=household.territory, programme=household.programme,
                         meeting_id=meeting["meeting_id"], scheduled_on=date.fromisoformat(meeting["held_on"]),
                         review_on=date.fromisoformat(review["re_review_on"]))
                for meeting, review, household in self._reviews() if review.get("re_review_on")]


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


class Generator:
    def __init__(self, seed: int = 2023) -> None:
        self.rng = random.Random(seed)
        # Follow-up draws from its own generator: `rng`'s sequence, and so every command
        # the demo sent before follow-up existed, stays the same.
        self.follow_up_rng = random.Random(f"{seed}:follow-up")
        self.data = Dataset()
        self.counters: Counter = Counter()
        self.household_of: dict[str, Household] = {}  # situation id -> its household
        self.decided: list[tuple[str, date, date]] = []  # (action id, decided on, due on)

    def next_id(self, kind: str) -> str:
        self.counters[kind] += 1
        return demo_id(kind, self.counters[kind])

    def day(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randint(0, (end - start).days))

    def weighted(self, weights: dict[str, int], rng: random.Random | None = None) -> str:
        return (rng or self.rng).choices(list(weights), weights=list(weights.values()))[0]

    # ------------------------------------------------------------ households

    def household(self, enrolled: date, closed: date | None, workers: list[str]) -> Household:
        programme = self.weighted(PROGRAMMES)
        youth = programme in YOUTH_PROGRAMMES or self.rng.random() < 0.03
        household = Household(
            id=self.next_id("household"), programme=programme, territory=self.rng.choice(TERRITORIES),
            referent=self.rng.choice(workers), enrolled_on=enrolled, youth=youth,
            dalo=self.rng.random() < (0.25 if youth else 0.08), closed_on=closed,
        )
        self.data.households.append(household)
        return household

    def households(self) -> None:
        for _ in range(300):  # enrolled and closed in 2022: not followed in 2023
            enrolled = self.day(date(2022, 1, 1), date(2022, 9, 30))
            self.household(enrolled, min(enrolled + timedelta(days=self.rng.randint(30, 200)), Y22[1]),
                           WORKERS + FORMER_WORKERS)
        for n in range(700):  # enrolled in 2022, still followed in 2023
            closed = (date(2023, 1, 1) if n < 100 else self.day(date(2023, 2, 1), Y23[1]) if n < 450
                      else self.day(*Y24) if n < 600 else None)
            self.household(self.day(*Y22), closed, WORKERS)
        for n in range(1145):  # enrolled in 2023
            enrolled = Y23[1] if n < 10 else self.day(*Y23)
            closed = None
            if n >= 10 and n < 310 and enrolled + timedelta(days=15) <= Y23[1]:
                closed = self.day(enrolled + timedelta(days=15), Y23[1])
            elif 310 <= n < 510:
                closed = self.day(*Y24)
            self.household(enrolled, closed, WORKERS)
        for _ in range(250):  # enrolled in 2024
            self.household(self.day(date(2024, 1, 1), date(2024, 6, 30)), None, WORKERS)

    # ------------------------------------------------------------ rehousings

    def rehousings(self) -> None:
        def candidates(span: tuple[date, date], youth: bool | None = None, dalo: bool | None = None):
            # A rehousing closes the accompaniment soon after: in 2022, only households
            # already closed in 2022, so that 2023's followed households stay as planned.
            return [h for h in self.data.households
                    if (w := h.window(span)) and (w[1] - w[0]).days >= 30 and h.outcome != "rehoused"
                    and (span != Y22 or (h.closed_on is not None and h.closed_on <= Y22[1]))
                    and (youth is None or h.youth == youth) and (dalo is None or h.dalo == dalo)]

        picks = [(Y23, True, True, 11), (Y23, True, False, 16), (Y22, None, None, 4), (Y24, None, None, 5)]
        for span, youth, dalo, count in picks:
            for household in self.rng.sample(candidates(span, youth, dalo), count):
                start, end = household.window(span)
                confirmed = self.day(start, end - timedelta(days=20))
                household.outcome = "rehoused"
                household.closed_on = confirmed + timedelta(days=self.rng.randint(7, 20))
                self.data.add("cases", "casework", "POST", "/v1/rehousings", {
                    "rehousing_id": self.next_id("rehousing"), "household_id": household.id,
                    "landlord": self.rng.choice(LANDLORDS), "confirmed_on": confirmed.isoformat()})

    # ------------------------------------------------------------ interviews

    def interviews(self, span: tuple[date, date], count: int, cancelled: int) -> None:
        open_ = [(h, w) for h in self.data.households if (w := h.window(span))]
        weights = [(w[1] - w[0]).days + 1 for _, w in open_]
        chosen = self.rng.choices(open_, weights=weights, k=count + cancelled)
        workers_seen: set[str] = set()
        for n, (household, (start, end)) in enumerate(chosen):
            pool = WORKERS + FORMER_WORKERS if span == Y22 else WORKERS
            worker = household.referent if self.rng.random() < 0.85 else self.rng.choice(pool)
            if span == Y23 and n < len(WORKERS):
                worker = WORKERS[n]  # every one of the 30 holds at least one 2023 interview
            interview_id = self.next_id("interview")
            held = self.day(start, end)
            self.data.add("cases", "casework", "POST", "/v1/interviews", {
                "interview_id": interview_id, "household_id": household.id, "worker_id": worker,
                "held_on": held.isoformat(), "mode": self.weighted(MODES),
                "topics": self.rng.sample(TOPICS, self.rng.randint(1, 3)),
                "duration_minutes": self.rng.choice([30, 45, 60, 60, 90])})
            if n >= count:  # the last `cancelled` ones were entered in error
                self.data.add("corrections", "casework", "POST", f"/v1/interviews/{interview_id}/cancellation",
                              {"cancelled_on": held.isoformat(), "reason": "entered_in_error"})
            else:
                workers_seen.add(worker)

    # ------------------------------------------------------------ veille

    def open_on(self, day: date) -> list[Household]:
        return [h for h in self.data.households if h.enrolled_on <= day and (h.closed_on is None or h.closed_on >= day)]

    def situation(self, day: date) -> tuple[str, date]:
        household = self.rng.choice(self.open_on(day))
        situation_id = self.next_id("situation")
        self.household_of[situation_id] = household
        self.data.add("cases", "veille", "POST", "/v1/situations", {
            "situation_id": situation_id, "household_id": household.id, "escalated_on": day.isoformat(),
            "severity": self.rng.choice(["concern", "serious", "serious", "critical"]),
            "reasons": self.rng.sample(["health", "rent_arrears", "isolation", "child_protection", "violence",
                                        "neighbourhood_conflict", "housing_conditions"], self.rng.randint(1, 2))})
        return situation_id, day

    def veille(self, span: tuple[date, date], meetings: int, reviewed: int, earlier: list[tuple[str, date]],
               unreviewed: int) -> list[tuple[str, date]]:
        """`meetings` meetings in `span` reviewing exactly `reviewed` distinct situations: the
        `earlier` ones (escalated before the span) and new ones escalated in it."""
        step = ((span[1] - span[0]).days - 10) / meetings
        dates = [span[0] + timedelta(days=5 + round(i * step)) for i in range(meetings)]
        # The first is escalated on the span's first day, so the first meeting has one to review.
        fresh = [self.situation(span[0])] + [
            self.situation(self.day(span[0], dates[-1])) for _ in range(reviewed - len(earlier) - 1)]
        for _ in range(unreviewed):
            self.situation(self.day(*span))
        reviews: dict[int, list[str]] = {i: [] for i in range(meetings)}
        reviews[0].append(fresh[0][0])
        for situation_id, escalated in [*earlier, *fresh[1:]]:
            eligible = [i for i, d in enumerate(dates) if d >= escalated][:6]
            reviews[self.rng.choice(eligible)].append(situation_id)
        escalation = dict([*earlier, *fresh])
        for i in range(meetings):
            again = sorted({s for j in range(i) for s in reviews[j]} - set(reviews[i]))
            if again and (not reviews[i] or self.rng.random() < 0.3):  # reviewed again later
                reviews[i].append(self.rng.choice(again))
            assert reviews[i], "every meeting reviews at least one situation"
        last_review: dict[str, date] = {}
        for i, day in enumerate(dates):
            meeting = {"meeting_id": self.next_id("meeting"), "held_on": day.isoformat(),
                       "territory": self.rng.choice(TERRITORIES),
                       "reviewed": [{"situation_id": s, "decision": self.rng.choice(
                           ["monitor", "monitor", "refer_partner", "urgent_action", "close"])} for s in reviews[i]]}
            for review in meeting["reviewed"]:
                self.follow_up(review, day)
            self.data.add("meetings", "veille", "POST", "/v1/meetings", meeting)
            for s in reviews[i]:
                last_review[s] = day
        for situation_id, day in last_review.items():
            if self.rng.random() < 0.6:
                self.data.add("corrections", "veille", "POST", f"/v1/situations/{situation_id}/resolution", {
                    "resolved_on": (day + timedelta(days=self.rng.randint(0, 40))).isoformat(),
                    "outcome": self.rng.choice(["stabilised", "referred", "rehoused", "other"])})
        assert all(escalation[s] <= dates[i] for i in reviews for s in reviews[i])
        return fresh

    def follow_up(self, review: dict, held: date) -> None:
        """What a review decides beyond its decision (none when it closes the situation):
        actions (half of the others) and a re-review (three in ten)."""
        rng = self.follow_up_rng
        if review["decision"] == "close":
            return
        if rng.random() < 0.5:
            referent = self.household_of[review["situation_id"]].referent
            review["actions"] = []
            for _ in range(rng.choice([1, 1, 2])):
                action_id, due = self.next_id("action"), held + timedelta(days=rng.randint(7, 45))
                review["actions"].append({
                    "action_id": action_id, "kind": self.weighted(ACTION_KINDS, rng),
                    "owner_worker_id": referent if rng.random() < 0.7 else rng.choice(WORKERS),
                    "due_on": due.isoformat()})
                self.decided.append((action_id, held, due))
        if rng.random() < 0.3:
            review["re_review_on"] = (held + timedelta(days=rng.randint(30, 90))).isoformat()

    def close_actions(self) -> None:
        """The follow-up phase: most actions completed (one in four of those after their due
        date), a few cancelled, the rest left open."""
        rng = self.follow_up_rng
        for action_id, decided, due in self.decided:
            draw = rng.random()
            if draw < 0.8:
                on = (due + timedelta(days=rng.randint(1, 30)) if rng.random() < 0.25
                      else decided + timedelta(days=rng.randint(1, (due - decided).days)))
                self.data.add("follow-up", "veille", "POST", f"/v1/actions/{action_id}/completion",
                              {"completed_on": on.isoformat()})
            elif draw < 0.88:
                on = decided + timedelta(days=rng.randint(0, (due - decided).days))
                self.data.add("follow-up", "veille", "POST", f"/v1/actions/{action_id}/cancellation",
                              {"cancelled_on": on.isoformat(), "reason": self.weighted(CANCELLATION_REASONS, rng)})

    # ------------------------------------------------------------ workshops

    def workshops(self, span: tuple[date, date], count: int) -> None:
        for _ in range(count):
            residence = self.rng.choice(list(RESIDENCES))
            self.data.add("cases", "casework", "POST", "/v1/workshops", {
                "workshop_id": self.next_id("workshop"), "residence": residence,
                "territory": RESIDENCES[residence], "theme": self.weighted(THEMES),
                "held_on": self.day(*span).isoformat(), "participants": self.rng.randint(4, 18)})

    # ------------------------------------------------------------ all

    def build(self) -> Dataset:
        self.households()
        self.rehousings()
        for span, count, cancelled in ((Y22, 3100, 60), (Y23, BILAN_2023["interviews_held"], 150), (Y24, 1400, 30)):
            self.interviews(span, count, cancelled)
        late_2022 = [self.situation(self.day(date(2022, 10, 1), Y22[1])) for _ in range(40)]
        self.veille(Y22, 70, 230, [], 10)
        self.veille(Y23, BILAN_2023["veille_meetings"], BILAN_2023["situations_reviewed"], late_2022, 22)
        self.veille((date(2024, 1, 1), date(2024, 6, 30)), 40, 120, [], 5)
        self.close_actions()
        for span, count in ((Y22, 95), (Y23, BILAN_2023["workshops_held"]), (Y24, 45)):
            self.workshops(span, count)
        for household in self.data.households:
            self.data.add("households", "intake", "POST", "/v1/households", {
                "household_id": household.id, "programme": household.programme, "territory": household.territory,
                "referent_worker_id": household.referent, "enrolled_on": household.enrolled_on.isoformat(),
                "youth": household.youth, "dalo_priority": household.dalo,
                "adults": self.rng.choice([1, 1, 1, 2, 2]) if not household.youth else 1,
                "children": self.rng.choice([0, 0, 1, 2, 3])})
            if household.closed_on:
                self.data.add("closures", "intake", "POST", f"/v1/households/{household.id}/closure", {
                    "closed_on": household.closed_on.isoformat(), "outcome": household.outcome})
        for household in self.rng.sample([h for h in self.data.households if h.closed_on and h.closed_on < Y23[0]], 20):
            self.data.add("erasures", "intake", "DELETE", f"/v1/households/{household.id}/personal-data")
        return self.data


PHASES = ("households", "cases", "meetings", "follow-up", "corrections", "closures", "erasures")


def build(seed: int = 2023) -> Dataset:
    return Generator(seed).build()
