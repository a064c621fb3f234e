"""The out-of-scope rule's two thresholds: real High tickets set the bar, off-topic pages choose among the rest."""

from __future__ import annotations

import numpy as np

from inference.decision import Thresholds
from trainer.pagerule import RuleTargets, Scored, choose_rule, curve

BASE = Thresholds(high_priority=0.1, far_out_of_scope=0.001)
TARGETS = RuleTargets(high_recall=1.0, hurried_high_recall=1.0, offtopic_flagged=0.9, flag_budget=0.05)


def _in_scope(p_high: list[float], scope: list[float]) -> Scored:
    """Every text High, so recall counts each of them."""
    return Scored(np.array(p_high), np.array(scope), np.ones(len(p_high), dtype=bool))


def test_bar_clears_off_topic_p_high_when_no_flagged_high_ticket_needs_it() -> None:
    offtopic = [Scored(np.array([0.9, 0.6, 0.3, 0.05]), np.full(4, 0.005))]  # all flagged, none far
    validation = _in_scope([0.95, 0.5], [0.5, 0.5])  # High tickets not flagged: the bar costs them nothing
    rule, report = choose_rule(BASE, offtopic, validation, [validation], TARGETS)
    assert 0.9 < rule.high_priority_out_of_scope <= 1.0 and report["chosen"]["offtopic_paged"] == 0.0
    assert rule.out_of_scope == 0.01  # the smallest share that flags them all


def test_a_flagged_high_ticket_keeps_the_bar_at_its_p_high() -> None:
    offtopic = [Scored(np.array([0.9, 0.6, 0.3, 0.05]), np.full(4, 0.005))]
    hurried = _in_scope([0.7, 0.5], [0.005, 0.5])  # a hurried High ticket flagged with P(High) 0.7
    validation = _in_scope([0.95, 0.5], [0.5, 0.5])
    rule, report = choose_rule(BASE, offtopic, validation, [hurried], TARGETS)
    assert 0.6 < rule.high_priority_out_of_scope <= 0.7  # pages the 0.9 text rather than miss the ticket
    assert report["chosen"]["hurried_high_recall"] == 1.0 and report["chosen"]["offtopic_paged"] == 0.25
    lenient = RuleTargets(1.0, 0.5, 0.9, 0.05)  # one hurried miss allowed: the bar clears every off-topic text
    assert choose_rule(BASE, offtopic, validation, [hurried], lenient)[0].high_priority_out_of_scope > 0.9


def test_more_flagging_is_chosen_only_when_it_pages_less_or_reaches_the_flag_target() -> None:
    scope = np.array([0.005, 0.005, 0.03, 0.5])  # flagged at 0.01: two; at 0.04: three; never the last
    offtopic = [Scored(np.array([0.05, 0.05, 0.05, 0.05]), scope)]
    validation = _in_scope([0.95], [0.5])
    rule, report = choose_rule(BASE, offtopic, validation, [validation], TARGETS)
    assert rule.out_of_scope == 0.04 and report["chosen"]["offtopic_flagged"] == 0.75  # flags the most it can
    rule, _ = choose_rule(BASE, offtopic, validation, [validation], RuleTargets(1.0, 1.0, 0.5, 0.05))
    assert rule.out_of_scope == 0.01  # half flagged is reached with the fewest in-scope tickets flagged


def test_curve_marks_the_chosen_point_and_moves_both_thresholds() -> None:
    offtopic = [Scored(np.array([0.9, 0.6, 0.3, 0.05]), np.array([0.005, 0.005, 0.03, 0.5]))]
    validation = _in_scope([0.95, 0.5], [0.5, 0.005])
    rule = BASE.model_copy(update={"out_of_scope": 0.02, "high_priority_out_of_scope": 0.5})
    rows = curve(rule, offtopic, validation, validation)
    chosen = [row for row in rows if row["chosen"]]
    assert len(chosen) == 1 and (chosen[0]["flag"], chosen[0]["bar"]) == (0.02, 0.5)
    assert chosen[0]["offtopic_paged"] == 0.75 and chosen[0]["high_recall"] == 1.0  # 0.3 is not flagged: pages
    assert len({row["flag"] for row in rows}) > 5 and len({row["bar"] for row in rows}) > 4
    strictest = next(row for row in rows if row["flag"] == 0.02 and row["bar"] == 1.0)
    assert strictest["high_recall"] == 0.5 and strictest["offtopic_paged"] == 0.25


def test_the_far_bar_is_dropped_rather_than_miss_a_high_ticket_beyond_it() -> None:
    offtopic = [Scored(np.array([0.9, 0.05]), np.array([0.0001, 0.0001]))]
    validation = _in_scope([0.95, 0.5], [0.5, 0.5])
    written = _in_scope([0.95, 0.5], [0.5, 0.0001])  # the same tickets as a message: one beyond every validation one
    rule, report = choose_rule(BASE, offtopic, validation, [validation, written], TARGETS)
    assert rule.far_out_of_scope == 0.0 and report["chosen"]["hurried_high_recall"] == 1.0
    assert 0.1 <= rule.high_priority_out_of_scope <= 0.5 and report["chosen"]["offtopic_paged"] == 0.5
    rule, report = choose_rule(BASE, offtopic, validation, [validation], TARGETS)
    assert rule.far_out_of_scope == BASE.far_out_of_scope and report["chosen"]["offtopic_paged"] == 0.0


def test_every_odd_wording_copy_keeps_its_recall_not_only_their_mean() -> None:
    offtopic = [Scored(np.array([0.9, 0.6]), np.full(2, 0.005))]
    validation = _in_scope([0.95, 0.95], [0.5, 0.5])
    hurried = _in_scope([0.95, 0.95, 0.95, 0.95], [0.5, 0.5, 0.5, 0.5])
    written = _in_scope([0.7, 0.95], [0.005, 0.5])  # one of two flagged with P(High) 0.7
    rule, report = choose_rule(BASE, offtopic, validation, [hurried, written], RuleTargets(1.0, 0.8, 0.9, 0.05))
    assert 0.6 < rule.high_priority_out_of_scope <= 0.7 and report["chosen"]["hurried_high_recall"] == 1.0
