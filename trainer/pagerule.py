"""Choose the out-of-scope rule's two thresholds together, and draw the trade-off they make.

The rule (``inference.decision``) has one score, ``scope_score``, and two thresholds: below ``out_of_scope`` a
ticket is flagged, and a flagged ticket pages only when P(High) reaches ``high_priority_out_of_scope``. Moving
them trades pages on off-topic text against High tickets missed. The bar is set by real High tickets, not by
off-topic text alone: a point is allowed only when High recall stays at its target on the validation split
and on each copy of it in odd wording (typed in a hurry, ``trainer.augment.hurried``; written as a message,
``trainer.augment.framed``), where real tickets get flagged. The far bar (no page beyond every validation
ticket) is kept only where those copies allow it. Among the allowed points the chosen one pages the fewest
off-topic fitting texts; then it flags the fewest in-scope tickets that still flag the wanted share of
off-topic ones; then it has the lowest bar, and keeps the far bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.decision import Thresholds, pages

__all__ = ["CURVE_BARS", "FLAG_SHARES", "PAGE_TOLERANCE", "RuleTargets", "Scored", "choose_rule", "curve", "measure"]

FLAG_SHARES = (0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1)
"""Flag thresholds tried: ``scope_score`` is the share of in-scope validation tickets at least as unusual, so
each is the share of in-scope tickets flagged (those above the caller's budget are left out)."""
PAGE_TOLERANCE = 0.002
"""Page rates within 0.2 points of the lowest count as equal: fewer in-scope tickets flagged wins then."""
CURVE_BARS = (0.25, 0.5, 0.75, 0.9, 1.0)
"""Out-of-scope High bars the printed curve shows besides the in-scope one and the chosen one."""


@dataclass(frozen=True)
class Scored:
    """One set's P(High) and ``scope_score`` per text; ``high`` marks the truly High tickets of in-scope sets."""

    p_high: np.ndarray
    scope: np.ndarray
    high: np.ndarray | None = None


@dataclass(frozen=True)
class RuleTargets:
    """What the chosen point must keep (High recall) and should reach (off-topic flagged)."""

    high_recall: float
    hurried_high_recall: float
    offtopic_flagged: float
    flag_budget: float


def measure(rule: Thresholds, offtopic: list[Scored], in_scope: Scored, odd: list[Scored]) -> dict[str, float]:
    """One point of the curve: off-topic flagged and paged (mean over the sets, each weighing the same), High
    recall on the in-scope set and on its copies in odd wording (``hurried_high_recall``: the worst of them), and
    the in-scope share flagged."""
    assert in_scope.high is not None and all(s.high is not None for s in odd)
    return {
        "flag": rule.out_of_scope,
        "bar": rule.high_priority_out_of_scope,
        "offtopic_flagged": float(np.mean([(s.scope < rule.out_of_scope).mean() for s in offtopic])),
        "offtopic_paged": float(np.mean([pages(s.p_high, s.scope, rule).mean() for s in offtopic])),
        "high_recall": float(pages(in_scope.p_high, in_scope.scope, rule)[in_scope.high].mean()),
        "hurried_high_recall": min(float(pages(s.p_high, s.scope, rule)[s.high].mean()) for s in odd),
        "in_scope_flagged": float((in_scope.scope < rule.out_of_scope).mean()),
    }


def choose_rule(
    base: Thresholds, offtopic: list[Scored], validation: Scored, odd: list[Scored], targets: RuleTargets
) -> tuple[Thresholds, dict[str, Any]]:
    """The flag threshold, the out-of-scope High bar, and whether the far bar (``base``'s) stays: High tickets in
    odd wording can be farther from every training ticket than any validation ticket, and must still page.

    Args:
        offtopic: Off-topic fitting sets; none of them is ever reported.
        validation: In-scope validation tickets; ``odd``: the same in odd wording (typed in a hurry, written as a
            message), each of which must keep ``targets.hurried_high_recall``.

    Returns:
        ``base`` with both thresholds set, and the chosen point with what it cost (for the model card).
    """
    in_scope_only = measure(base.model_copy(update={"out_of_scope": 0.0}), offtopic, validation, odd)
    need = (min(targets.high_recall, in_scope_only["high_recall"]),
            min(targets.hurried_high_recall, in_scope_only["hurried_high_recall"]))
    tried = []
    for far in sorted({base.far_out_of_scope, 0.0}, reverse=True):
        for flag in [share for share in FLAG_SHARES if share <= targets.flag_budget] or [targets.flag_budget]:
            for bar in _bars(base.high_priority, flag, offtopic):
                rule = base.model_copy(update={"out_of_scope": flag, "high_priority_out_of_scope": bar,
                                               "far_out_of_scope": far})
                tried.append({**measure(rule, offtopic, validation, odd), "far": far})

    # The in-scope bar with no far bar pages what the in-scope rule alone pages, so some point keeps both.
    points = [p for p in tried if p["high_recall"] >= need[0] and p["hurried_high_recall"] >= need[1]]
    lowest = min(p["offtopic_paged"] for p in points)
    near = [p for p in points if p["offtopic_paged"] <= lowest + PAGE_TOLERANCE]
    flagging = [p for p in near if p["offtopic_flagged"] >= targets.offtopic_flagged]
    if flagging:
        chosen = min(flagging, key=lambda p: (p["flag"], p["bar"], -p["far"]))
    else:  # the budget cannot flag the wanted share: flag as many as it can, with the fewest in-scope tickets
        chosen = min(near, key=lambda p: (-p["offtopic_flagged"], p["flag"], p["bar"], -p["far"]))
    rule = base.model_copy(update={"out_of_scope": chosen["flag"], "high_priority_out_of_scope": chosen["bar"],
                                   "far_out_of_scope": chosen["far"]})
    report = {
        "chosen": chosen,
        "in_scope_bar_only": in_scope_only,
        "required_high_recall": need[0],
        "required_hurried_high_recall": need[1],
        "offtopic_flagged_target": targets.offtopic_flagged,
        "flag_budget": targets.flag_budget,
        "points_tried": len(tried),
    }
    return rule, report


def curve(
    rule: Thresholds, offtopic: list[Scored], in_scope: Scored, hurried: Scored, urgent: Scored | None = None
) -> list[dict[str, Any]]:
    """The trade-off through ``rule``: every flag share at its bar, and its flag threshold at a few bars (the
    in-scope one among them), measured on the given sets; the chosen point is marked ``chosen``. ``urgent``:
    High tickets in other words than the in-scope set's, whose share paged each point also gets."""
    flag, bar = rule.out_of_scope, rule.high_priority_out_of_scope
    points = {(share, bar) for share in FLAG_SHARES} | {(flag, other) for other in (rule.high_priority, *CURVE_BARS)}
    rows = []
    for share, other in sorted(points | {(flag, bar)}):
        moved = rule.model_copy(update={"out_of_scope": share, "high_priority_out_of_scope": other})
        point = measure(moved, offtopic, in_scope, [hurried])
        if urgent is not None:
            point["urgent_paged"] = float(pages(urgent.p_high, urgent.scope, moved).mean())
        rows.append({**point, "chosen": (share, other) == (flag, bar)})
    return rows


def _bars(high_priority: float, flag: float, offtopic: list[Scored]) -> list[float]:
    """Bars worth trying: the in-scope one, and just above each flagged off-topic text's P(High) (where the page
    rate steps down), up to 1 (a flagged ticket never pages)."""
    steps = np.concatenate([s.p_high[s.scope < flag] for s in offtopic] or [np.zeros(0)])
    above = np.unique(np.minimum(1.0, steps[steps >= high_priority] + 1e-6))
    return sorted({high_priority, 1.0, *above.tolist()})
