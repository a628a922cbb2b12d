"""Statistical disclosure control of the breakdowns published to an external audience
(funders, the public): which counts are blanked so that no small group of households can be
singled out, and the attack that checks it. Pure: plain rows in, plain rows out.

The policy:
- A count of 1 to 4 (threshold 5) is blanked (primary suppression), and so is a total of 1 to 4.
- A count of 0 is published: it counts no one, so it tells nothing about anyone.
- Where a column's total is published, its blanks add up to a known number, so more counts are
  blanked with them (complements, smallest non-zero first) until at least two are blank and they
  add up to 5 or more: a blank may then be 0 or 5 and over, as far as anyone can tell.
- Some figures bound others (rehousings_dalo and rehousings_youth are parts of rehousings). The
  result is attacked as an outsider would attack it, by linear programming over everything
  published; while a blank can be pinned, or a small count told from 0 or from 5, related
  figures are given the same blanks.

The attack is the LP relaxation (counts may be fractional), the usual audit of cell
suppression; an attacker who also uses that counts are whole numbers can only get an interval
inside the LP's, sometimes a narrower one, which this check does not look for. Hand-written
because the rule is a short greedy pass and the part that must be right, the attack, is
scipy's HiGHS solver; τ-ARGUS, the reference tool, is a separate program (its Python
package, piargus, only drives it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

THRESHOLD = 5
# (left, right): left <= right in every row and in the totals.
RELATIONS: tuple[tuple[str, str], ...] = (("rehousings_dalo", "rehousings"), ("rehousings_youth", "rehousings"))
TOTAL = "total"
Cell = tuple[int | str, str]  # (row index, figure), or (TOTAL, figure)
_TOLERANCE = 1e-6  # of the LP solver's answers


@dataclass(frozen=True)
class Protected:
    """Which counts of one figure column are blanked: a flag per row, and the total's."""

    cells: tuple[bool, ...]
    total: bool


def protect(values: Sequence[int], total: int, threshold: int = THRESHOLD) -> Protected:
    primary = Protected(tuple(1 <= value < threshold for value in values), 1 <= total < threshold)
    return _with_complements(values, primary, threshold)


def _with_complements(values: Sequence[int], protected: Protected, threshold: int) -> Protected:
    if protected.total or not any(protected.cells):
        return protected  # no published total to subtract the published counts from
    cells = list(protected.cells)
    candidates = iter(sorted((value, index) for index, value in enumerate(values) if value > 0 and not cells[index]))
    while sum(cells) < 2 or sum(value for value, blank in zip(values, cells) if blank) < threshold:
        candidate = next(candidates, None)
        if candidate is None:
            # Every non-zero count is blank, so the blanks add up to the total: under the
            # threshold, or held by one count, a primary one, so under the threshold too.
            # Either way the total is 1 to 4, primary itself, and protect never gets here; nor
            # does publish's mirroring, which leaves all-zero columns alone and blanks at least
            # two rows under a published total. Kept so that a blank is never left pinned.
            return Protected(tuple(cells), total=True)
        cells[candidate[1]] = True
    return Protected(tuple(cells), total=False)


def publish(rows: list[dict[str, Any]], totals: dict[str, int], figures: Sequence[str],
            threshold: int = THRESHOLD) -> tuple[list[dict[str, Any]], dict[str, int | None]]:
    """Blanks (None) what the policy says; other keys of the rows and totals are kept as they are.

    Each figure column is protected on its own, then the result is attacked with RELATIONS.
    While the attack pins a blank or bounds a small count away from 0 or from the threshold,
    every pair of related figures gets the union of their blanks (same rows, and the totals),
    completed with complements again; a column of zeros only is left published. Once related
    columns share their blanks, each blank can be 0 or the sum of its column's blanks (at least
    the threshold), so this ends; blanking the related columns whole stays behind it as a last
    resort.
    """
    columns = {figure: [row[figure] for row in rows] for figure in figures}
    for figure in figures:
        if sum(columns[figure]) != totals[figure]:
            raise ValueError(f"the rows of {figure} add up to {sum(columns[figure])}, not to {totals[figure]}")
    relations = [(left, right) for left, right in RELATIONS if left in figures and right in figures]
    protected = {figure: protect(columns[figure], totals[figure], threshold) for figure in figures}
    while True:
        published = _blanked(rows, totals, protected)
        if _withstands(attack(*published, figures, relations), columns, totals, threshold):
            return published
        wider = _mirrored(protected, relations, columns, threshold)
        if wider == protected:
            related = {figure for relation in relations for figure in relation}
            wider = {figure: Protected((True,) * len(rows), True) if figure in related else protection
                     for figure, protection in protected.items()}
        if wider == protected:
            # Not reached in any table tried (see the tests); should it be, publishing
            # nothing of the related figures is safe, an error would not be.
            return _blanked(rows, totals, {figure: Protected((True,) * len(rows), True) for figure in figures})
        protected = wider


def _blanked(rows: list[dict[str, Any]], totals: dict[str, int],
             protected: dict[str, Protected]) -> tuple[list[dict[str, Any]], dict[str, int | None]]:
    rows_published = [dict(row) for row in rows]
    totals_published: dict[str, int | None] = dict(totals)
    for figure, protection in protected.items():
        for row, blank in zip(rows_published, protection.cells):
            if blank:
                row[figure] = None
        if protection.total:
            totals_published[figure] = None
    return rows_published, totals_published


def _mirrored(protected: dict[str, Protected], relations: Sequence[tuple[str, str]],
              columns: dict[str, list[int]], threshold: int) -> dict[str, Protected]:
    result = dict(protected)
    changed = True
    while changed:
        changed = False
        for left, right in relations:
            union = Protected(tuple(a or b for a, b in zip(result[left].cells, result[right].cells)),
                              result[left].total or result[right].total)
            for figure in (left, right):
                if not any(columns[figure]):
                    continue  # all zeros, published: blanking them would hide nothing, and cost the totals
                completed = _with_complements(columns[figure], union, threshold)
                changed |= completed != result[figure]
                result[figure] = completed
    return result


def _withstands(intervals: dict[Cell, tuple[float, float]], columns: dict[str, list[int]],
                totals: dict[str, int], threshold: int) -> bool:
    for (row, figure), (low, high) in intervals.items():
        true = totals[figure] if row == TOTAL else columns[figure][row]
        if high < math.inf and math.floor(high + _TOLERANCE) <= math.ceil(low - _TOLERANCE):
            return False  # a single count fits: the blank is as good as published
        if 1 <= true < threshold and (low > _TOLERANCE or high < threshold - _TOLERANCE):
            return False
    return True


def attack(rows_published: list[dict[str, Any]], totals_published: dict[str, int | None],
           figures: Sequence[str], relations: Sequence[tuple[str, str]] = RELATIONS,
           ) -> dict[Cell, tuple[float, float]]:
    """The smallest and largest value of each blank (None) consistent with what is published:
    the rows of each figure add up to its total, related figures keep left <= right in each
    row and in the totals, and no count is negative. One LP per blank, minimised and maximised;
    an unbounded maximum is float("inf")."""
    unknowns: list[Cell] = [(index, figure) for figure in figures
                            for index, row in enumerate(rows_published) if row[figure] is None]
    unknowns += [(TOTAL, figure) for figure in figures if totals_published[figure] is None]
    position = {cell: index for index, cell in enumerate(unknowns)}

    def linear(terms: list[tuple[int, Cell]]) -> tuple[list[float], float]:
        """sum(sign * cell) as coefficients on the unknowns and a constant from the published."""
        coefficients, constant = [0.0] * len(unknowns), 0.0
        for sign, (row, figure) in terms:
            if (row, figure) in position:
                coefficients[position[row, figure]] += sign
            else:
                constant += sign * (totals_published[figure] if row == TOTAL else rows_published[row][figure])
        return coefficients, constant

    every_row: list[int | str] = [*range(len(rows_published)), TOTAL]
    sums = [linear([(1, (row, figure)) for row in range(len(rows_published))] + [(-1, (TOTAL, figure))])
            for figure in figures]  # = 0
    orders = [linear([(1, (row, left)), (-1, (row, right))]) for left, right in relations
              if left in figures and right in figures for row in every_row]  # <= 0
    sums = [(coefficients, constant) for coefficients, constant in sums if any(coefficients)]
    orders = [(coefficients, constant) for coefficients, constant in orders if any(coefficients)]
    programme = {"A_eq": [coefficients for coefficients, _ in sums] or None,
                 "b_eq": [-constant for _, constant in sums] or None,
                 "A_ub": [coefficients for coefficients, _ in orders] or None,
                 "b_ub": [-constant for _, constant in orders] or None}

    def extreme(objective: np.ndarray) -> float:
        result = linprog(objective, **programme, bounds=(0, None), method="highs")
        if result.status == 3:
            return -math.inf
        if result.status != 0:
            raise ValueError(f"the published table contradicts itself: {result.message}")
        return float(result.fun)

    intervals: dict[Cell, tuple[float, float]] = {}
    for index, cell in enumerate(unknowns):
        objective = np.zeros(len(unknowns))
        objective[index] = 1.0
        intervals[cell] = (extreme(objective), -extreme(-objective))
    return intervals
