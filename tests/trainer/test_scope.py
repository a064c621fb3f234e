"""Off-topic sets: what fits the out-of-scope rule is never what reports it."""

from __future__ import annotations

from trainer.lookalikes import lookalike_texts
from trainer.scope import OffTopicSet, fitting_offtopic, reporting_offtopic

CLINC = OffTopicSet("oos_val", [f"question number {i} about something else" for i in range(40)])
OTHER = OffTopicSet("mine", ["a user's own file", "scored whole"])


def test_fitting_and_reporting_sets_share_no_text() -> None:
    fitting = fitting_offtopic([CLINC])
    reporting = reporting_offtopic([CLINC, OTHER], fitted={"oos_val"})
    fitted_texts = {text for s in fitting for text in s.texts}
    assert not fitted_texts & {text for s in reporting for text in s.texts}
    names = [s.name for s in reporting]
    assert names == ["oos_val (reporting half)", "mine", "generated", "look-alikes (reporting)"]
    halves = {s.name: s.texts for s in fitting + reporting}
    assert sorted(halves["oos_val (fitting half)"] + halves["oos_val (reporting half)"]) == sorted(CLINC.texts)
    assert halves["look-alikes (reporting)"] == lookalike_texts("reporting")


def test_a_file_that_fitted_nothing_is_reported_whole() -> None:
    reporting = reporting_offtopic([CLINC], fitted=set())
    assert reporting[0] == CLINC
