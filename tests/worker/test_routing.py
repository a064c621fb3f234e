"""Routing: which topics a triaged ticket lands on, its key, headers and value."""

from __future__ import annotations

import json

from schemas.enums import Category, Priority
from schemas.messages import Confidence, EnrichedTicket, IntentScore, Ticket, Triage
from schemas.topics import TopicSettings
from worker.records import InRecord
from worker.routing import destinations, enriched_records, enriched_value

SOURCE = InRecord("tickets.incoming", 0, 7, b"k", b"{}", None)


def make_triage(category: Category, priority: Priority, review: bool) -> Triage:
    return Triage(
        category=category,
        priority=priority,
        intent="lost_or_stolen_card",
        confidence=Confidence(category=0.9, intent=0.8, priority=0.7),
        top_intents=[IntentScore(intent="lost_or_stolen_card", probability=0.8)],
        needs_review=review,
        model_version="v1",
    )


def test_destinations_follow_priority_and_review() -> None:
    topics = TopicSettings()
    assert destinations(make_triage(Category.BILLING, Priority.LOW, False), topics) == [
        "tickets.enriched", "tickets.route.billing",
    ]
    assert destinations(make_triage(Category.TECHNICAL, Priority.HIGH, True), topics) == [
        "tickets.enriched", "tickets.route.technical", "tickets.oncall", "tickets.review",
    ]
    assert "tickets.oncall" not in destinations(make_triage(Category.TECHNICAL, Priority.MEDIUM, False), topics)


def test_records_are_keyed_by_ticket_id_with_routing_headers() -> None:
    ticket = Ticket(ticket_id="T-1", text="my card was stolen", channel="app")
    triage = make_triage(Category.ACCOUNT_LOGIN, Priority.HIGH, False)
    records = enriched_records(ticket, triage, TopicSettings(), SOURCE)
    assert [r.topic for r in records] == ["tickets.enriched", "tickets.route.account-login", "tickets.oncall"]
    for record in records:
        assert record.key == b"T-1" and record.source is SOURCE
        headers = dict(record.headers)
        assert headers["model_version"] == b"v1"
        assert headers["category"] == b"Account/Login" and headers["priority"] == b"High"
    assert len({r.value for r in records}) == 1


def test_enriched_value_is_the_enriched_ticket_document() -> None:
    ticket = Ticket.model_validate(
        {"ticket_id": "T-2", "text": "café  card\u0007", "metadata": {"a": [1, 2]}, "crm_ref": "X9"}
    )
    triage = make_triage(Category.BILLING, Priority.LOW, True)
    value = enriched_value(ticket, triage)
    expected = EnrichedTicket.from_ticket(ticket, triage).model_dump_json()
    assert json.loads(value) == json.loads(expected)
    assert EnrichedTicket.model_validate_json(value).triage == triage


def test_a_ticket_field_named_triage_is_replaced_not_duplicated() -> None:
    ticket = Ticket.model_validate({"ticket_id": "T-3", "text": "hello", "triage": "spoofed"})
    value = enriched_value(ticket, make_triage(Category.BILLING, Priority.LOW, False))
    assert value.count(b'"triage"') == 1
    assert json.loads(value)["triage"]["category"] == "Billing"
