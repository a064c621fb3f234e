"""The report's off-topic counts from a hand-made ledger: no broker, no model."""

from __future__ import annotations

import re

from rich.console import Console

from loadtest.collector import Collector
from loadtest.ledger import Ledger, Tracked
from loadtest.replay import OFFTOPIC, ReplayConfig
from loadtest.report import OffTopic, build_report
from loadtest.summary import print_report
from schemas.enums import Priority
from schemas.messages import Confidence, IntentScore, Triage
from schemas.topics import TopicSettings

TOPICS = TopicSettings.namespaced("t")


def _triage(priority: Priority, out_of_scope: bool) -> Triage:
    return Triage(
        category="General Inquiry",
        priority=priority,
        intent="greeting",
        confidence=Confidence(category=0.5, intent=0.5, priority=0.5),
        top_intents=[IntentScore(intent="greeting", probability=0.5)],
        needs_review=True,
        out_of_scope=out_of_scope,
        model_version="v",
    )


def _sent(ledger: Ledger, seq: int, kind: str) -> Tracked:
    entry = Tracked(f"run-{seq}", f"sha-{seq}", 100.0 + seq, kind)
    ledger.register(entry)
    ledger.mark_acked(entry, True)
    return entry


def _enriched(ledger: Ledger, entry: Tracked, triage: Triage, *topics: str) -> None:
    for topic in (TOPICS.enriched, TOPICS.route(triage.category), *topics):
        ledger.on_enriched(entry.ticket_id, topic, triage, entry.sent_at + 0.05)


def test_offtopic_tickets_are_counted_sent_flagged_and_paged() -> None:
    ledger = Ledger()
    flagged_low = _sent(ledger, 0, OFFTOPIC)
    _enriched(ledger, flagged_low, _triage(Priority.LOW, out_of_scope=True), TOPICS.review)
    flagged_paged = _sent(ledger, 1, OFFTOPIC)
    _enriched(ledger, flagged_paged, _triage(Priority.HIGH, out_of_scope=True), TOPICS.oncall)
    missed_paged = _sent(ledger, 2, OFFTOPIC)
    _enriched(ledger, missed_paged, _triage(Priority.HIGH, out_of_scope=False), TOPICS.oncall)
    _sent(ledger, 3, OFFTOPIC)  # never came back: lost, not triaged
    banking_paged = _sent(ledger, 4, "ticket")
    _enriched(ledger, banking_paged, _triage(Priority.HIGH, out_of_scope=False), TOPICS.oncall)

    report = build_report("run", ReplayConfig(), ["b:1"], TOPICS, ledger, Collector(["b:1"], TOPICS, ledger))

    assert report.offtopic == OffTopic(sent=4, enriched=3, out_of_scope=2, paged=2)
    assert report.counts.lost == 1
    console = Console(record=True, width=100)
    print_report(report, console)
    shown = console.export_text()
    assert "Off-topic tickets" in shown and "2 of 3 triaged" in shown
    assert re.search(r"paged \(on-call\) +│ +2 │", shown), shown


def test_a_run_without_offtopic_tickets_reports_zeros() -> None:
    ledger = Ledger()
    entry = _sent(ledger, 0, "ticket")
    _enriched(ledger, entry, _triage(Priority.HIGH, out_of_scope=False), TOPICS.oncall)
    report = build_report("run", ReplayConfig(), ["b:1"], TOPICS, ledger, Collector(["b:1"], TOPICS, ledger))
    assert report.offtopic == OffTopic()
    console = Console(record=True, width=100)
    print_report(report, console)
    assert "Off-topic" not in console.export_text()
