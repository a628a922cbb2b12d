"""The blanks of the published breakdowns (services/stats/suppression.py): the hand examples
of the policy, and an attacker of the test's own that tries to recover each small count
from the published rows and totals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from services.stats.suppression import Protected, attack, protect, publish

pytestmark = pytest.mark.unit

FIGURES = ("households_followed", "workshops_held", "rehousings", "rehousings_dalo", "rehousings_youth")
# Written again rather than imported: the attacker knows the figures, not the module.
PARTS = (("rehousings_dalo", "rehousings"), ("rehousings_youth", "rehousings"))
NO_CAP = 10**6  # a bound no count reaches, so that the attacker's programme is never unbounded
SOLVER_TOLERANCE = 1e-7


def recover(rows: list[dict], totals: dict, figures=FIGURES) -> dict[tuple, tuple[float, float]]:
    """The smallest and largest value each blank can hold, given what is published.

    Written apart from suppression.attack: here every count of the table is a variable, the
    published ones fixed by their bounds, and the programme is solved by the dual simplex."""
    cells = [(index, figure) for index in range(len(rows)) for figure in figures]
    cells += [("total", figure) for figure in figures]
    column = {cell: position for position, cell in enumerate(cells)}

    def shown(cell):
        place, figure = cell
        return totals[figure] if place == "total" else rows[place][figure]

    bounds = [(0, NO_CAP) if shown(cell) is None else (shown(cell), shown(cell)) for cell in cells]
    sums = np.zeros((len(figures), len(cells)))
    for line, figure in enumerate(figures):
        for index in range(len(rows)):
            sums[line, column[index, figure]] = 1
        sums[line, column["total", figure]] = -1
    parts = []
    for part, whole in [(part, whole) for part, whole in PARTS if part in figures and whole in figures]:
        for place in [*range(len(rows)), "total"]:
            inequation = np.zeros(len(cells))
            inequation[column[place, part]], inequation[column[place, whole]] = 1, -1
            parts.append(inequation)

    orders = {"A_ub": np.array(parts), "b_ub": np.zeros(len(parts))} if parts else {}

    def extreme(objective) -> float:
        result = linprog(objective, A_eq=sums, b_eq=np.zeros(len(figures)), **orders, bounds=bounds,
                         method="highs-ds")
        assert result.status == 0, result.message
        return result.fun

    found = {}
    for cell in cells:
        if shown(cell) is None:
            objective = np.zeros(len(cells))
            objective[column[cell]] = 1
            found[cell] = (extreme(objective), -extreme(-objective))
    return found


def every_count(rows: list[dict], totals: dict, figures=FIGURES):
    for figure in figures:
        for index, row in enumerate(rows):
            yield (index, figure), row[figure]
        yield ("total", figure), totals[figure]


def test_a_small_count_is_blanked_with_the_smallest_count_that_hides_it():
    assert protect([3, 10, 20], 33) == Protected((True, True, False), total=False)
    assert protect([3, 0, 8], 11) == Protected((True, False, True), total=False)  # a zero hides nothing
    assert protect([2, 7, 7, 20], 36) == Protected((True, True, False, False), total=False)  # ties: first


def test_complements_are_added_until_the_blanks_reach_the_threshold():
    assert protect([2, 1, 9, 30], 42) == Protected((True, True, True, False), total=False)
    assert protect([1, 1, 6, 6], 14) == Protected((True, True, True, False), total=False)
    assert protect([4, 1, 6, 6], 17) == Protected((True, True, False, False), total=False)  # 4 + 1 = 5
    assert protect([1, 1], 2, threshold=3) == Protected((True, True), total=True)


def test_zeros_and_large_counts_are_published():
    assert protect([0, 0, 7], 7) == Protected((False, False, False), total=False)
    assert protect([], 0) == Protected((), total=False)


def test_a_small_total_is_blanked_with_every_count_it_is_made_of():
    assert protect([3, 0, 0], 3) == Protected((True, False, False), total=True)
    assert protect([1, 2, 0], 3) == Protected((True, True, False), total=True)


def test_the_not_applicable_row_is_a_count_like_the_others():
    rows = [{"territory": "bretagne", "rehousings": 10}, {"territory": None, "rehousings": 3},
            {"territory": "normandie", "rehousings": 20}]
    published, totals = publish(rows, {"year": 2023, "rehousings": 33}, ["rehousings"])
    assert published == [{"territory": "bretagne", "rehousings": None}, {"territory": None, "rehousings": None},
                         {"territory": "normandie", "rehousings": 20}]
    assert totals == {"year": 2023, "rehousings": 33}
    assert rows[1] == {"territory": None, "rehousings": 3}  # the caller's rows are left alone


def test_the_attacker_pins_a_count_blanked_alone_under_a_published_total():
    rows = [{"territory": "a", "rehousings": None}, {"territory": "b", "rehousings": 10},
            {"territory": "c", "rehousings": 20}]
    assert recover(rows, {"rehousings": 33}, ["rehousings"]) == {(0, "rehousings"): pytest.approx((3, 3))}
    assert attack(rows, {"rehousings": 33}, ["rehousings"]) == {(0, "rehousings"): pytest.approx((3, 3))}


def test_the_attacker_uses_that_a_part_is_at_most_its_whole():
    # Each column protected on its own: DALO's 3 and 6 are blank, rehousings all published.
    # As the 6 can be no more than the 6 rehousings of its row, the 3 is at least 3.
    rows = [{"rehousings": 5, "rehousings_dalo": None, "rehousings_youth": 0},
            {"rehousings": 6, "rehousings_dalo": None, "rehousings_youth": 0}]
    totals = {"rehousings": 11, "rehousings_dalo": 9, "rehousings_youth": 0}
    figures = ["rehousings", "rehousings_dalo", "rehousings_youth"]
    assert recover(rows, totals, figures)[0, "rehousings_dalo"] == pytest.approx((3, 5))
    assert attack(rows, totals, figures)[0, "rehousings_dalo"] == pytest.approx((3, 5))
    truth = [{"rehousings": 5, "rehousings_dalo": 3, "rehousings_youth": 0},
             {"rehousings": 6, "rehousings_dalo": 6, "rehousings_youth": 0}]
    published, published_totals = publish(truth, totals, figures)
    assert published == [{"rehousings": None, "rehousings_dalo": None, "rehousings_youth": 0},
                         {"rehousings": None, "rehousings_dalo": None, "rehousings_youth": 0}]
    assert published_totals == totals  # the wholes are blanked in the same rows, not everywhere
    low, high = recover(published, published_totals, figures)[0, "rehousings_dalo"]
    assert low <= SOLVER_TOLERANCE and high >= 5 - SOLVER_TOLERANCE


def test_a_blank_total_leaves_its_counts_unbounded():
    rows = [{"rehousings": None}, {"rehousings": 0}]
    assert attack(rows, {"rehousings": None}, ["rehousings"]) == {
        (0, "rehousings"): (0, float("inf")), ("total", "rehousings"): (0, float("inf"))}


small_or_not = st.integers(0, 4) | st.integers(0, 25)


@st.composite
def breakdowns(draw) -> tuple[list[dict], dict]:
    size = draw(st.integers(1, 12))
    rows = []
    for index in range(size):
        rehousings = draw(small_or_not)
        rows.append({"territory": None if index == size - 1 and draw(st.booleans()) else f"territoire-{index}",
                     "households_followed": draw(small_or_not), "workshops_held": draw(small_or_not),
                     "rehousings": rehousings, "rehousings_dalo": draw(st.integers(0, rehousings)),
                     "rehousings_youth": draw(st.integers(0, rehousings))})
    return rows, {"year": 2023, **{figure: sum(row[figure] for row in rows) for figure in FIGURES}}


@settings(max_examples=40, deadline=None)
@given(breakdowns())
def test_no_small_count_can_be_recovered_from_a_published_breakdown(breakdown):
    rows, totals = breakdown
    published, published_totals = publish(rows, totals, FIGURES)
    assert [row["territory"] for row in published] == [row["territory"] for row in rows]
    assert published_totals["year"] == 2023
    found = recover(published, published_totals)
    truth = dict(every_count(rows, totals))
    for cell, shown in every_count(published, published_totals):
        if 1 <= truth[cell] < 5:
            assert shown is None, cell
            low, high = found[cell]  # can it be told from 0, or from a count of 5 or more?
            assert low <= SOLVER_TOLERANCE and high >= 5 - SOLVER_TOLERANCE, (cell, truth[cell], low, high)
        elif shown is not None:
            assert shown == truth[cell], cell
    for figure in FIGURES:
        if all(row[figure] is not None for row in published):
            assert sum(row[figure] for row in published) == published_totals[figure]
