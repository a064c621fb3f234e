"""The replay's message plan and arrival processes: pure functions, no broker."""

from __future__ import annotations

import itertools
import json
import statistics

import pytest

from loadtest.replay import MALFORMED, OFFTOPIC, ReplayConfig, plan_messages
from loadtest.source import SourceRecord, Truth
from schemas.enums import Priority
from schemas.validation import TicketRejected, decode_ticket
from trainer.offtopic import offtopic_texts

RECORDS = [
    SourceRecord(f"text number {i}", Truth("card_arrival", "Order/Delivery", Priority.MEDIUM), {})
    for i in range(50)
]


def test_constant_arrivals_are_evenly_spaced() -> None:
    offsets = list(itertools.islice(ReplayConfig(arrival="constant", rate=20.0).arrival_offsets(), 5))
    assert offsets == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])


def test_poisson_arrivals_keep_the_mean_rate_with_irregular_gaps() -> None:
    offsets = list(itertools.islice(ReplayConfig(arrival="poisson", rate=100.0, seed=3).arrival_offsets(), 5001))
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.mean(gaps) == pytest.approx(0.01, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.01, rel=0.1)


def test_bursts_send_together_then_wait() -> None:
    config = ReplayConfig(arrival="burst", rate=100.0, burst_size=10)
    offsets = list(itertools.islice(config.arrival_offsets(), 30))
    assert offsets[:10] == [0.0] * 10
    assert offsets[10:20] == [pytest.approx(0.1)] * 10
    assert offsets[20] == pytest.approx(0.2)


def test_max_rate_never_waits() -> None:
    assert set(itertools.islice(ReplayConfig(arrival="poisson", rate=None).arrival_offsets(), 100)) == {0.0}


@pytest.mark.parametrize("kind", MALFORMED)
def test_every_malformed_kind_is_rejected_with_its_expected_code(kind: str) -> None:
    build, code = MALFORMED[kind]
    with pytest.raises(TicketRejected) as caught:
        decode_ticket(build("run-0000001", "hello there"))
    assert caught.value.info.code == code


def test_plan_mixes_duplicates_and_malformed_at_the_asked_ratios() -> None:
    config = ReplayConfig(duplicate_ratio=0.3, malformed_ratio=0.1, seed=5)
    plan = list(itertools.islice(plan_messages(RECORDS, config, "run"), 4000))
    kinds = [p.kind for p in plan]
    assert kinds.count("duplicate") / len(plan) == pytest.approx(0.3, abs=0.03)
    assert sum(k in MALFORMED for k in kinds) / len(plan) == pytest.approx(0.1, abs=0.02)
    assert len({p.ticket_id for p in plan}) == len(plan)
    fresh_texts = [p.record.text for p in plan if p.kind == "ticket" and p.record is not None]
    assert len(set(fresh_texts[: len(RECORDS)])) == len(RECORDS), (
        "one full pass before any source text repeats"
    )


def test_plan_mixes_in_generated_offtopic_tickets_marked_by_kind_without_truth() -> None:
    config = ReplayConfig(duplicate_ratio=0.1, malformed_ratio=0.01, offtopic_ratio=0.05, seed=3)
    plan = list(itertools.islice(plan_messages(RECORDS, config, "run"), 4000))
    offtopic = [p for p in plan if p.kind == OFFTOPIC]
    assert len(offtopic) / len(plan) == pytest.approx(0.05, abs=0.01)
    generated = {text for _, text in offtopic_texts(1000, seed=3)}
    assert all(p.record is not None and p.record.text in generated and p.truth is None for p in offtopic)
    assert {p.record.text for p in plan if p.kind in ("ticket", "duplicate") and p.record} <= {
        r.text for r in RECORDS
    }
    meta = decode_ticket(offtopic[0].encode("run", 1.0)).metadata["loadtest"]
    assert meta["kind"] == OFFTOPIC and meta["truth"] is None


def test_without_offtopic_ratio_the_plan_is_what_it_was() -> None:
    """Adding the off-topic draw must not reshuffle seeded plans that do not ask for it."""
    config = ReplayConfig(duplicate_ratio=0.3, malformed_ratio=0.1, seed=5)
    kinds = [p.kind for p in itertools.islice(plan_messages(RECORDS, config, "run"), 500)]
    assert OFFTOPIC not in kinds
    assert kinds[:12] == [  # the sequence before off-topic tickets existed
        "ticket", "ticket", "duplicate", "ticket", "ticket", "duplicate", "duplicate", "ticket", "ticket",
        "empty_message", "duplicate", "duplicate",
    ]


def test_duplicates_only_resend_texts_already_sent() -> None:
    plan = list(
        itertools.islice(plan_messages(RECORDS, ReplayConfig(duplicate_ratio=0.5, seed=1), "run"), 60)
    )
    sent: set[str] = set()
    for planned in plan:
        assert planned.record is not None
        if planned.kind == "duplicate":
            assert planned.record.text in sent
        sent.add(planned.record.text)


def test_plan_is_repeatable_from_its_seed() -> None:
    config = ReplayConfig(duplicate_ratio=0.2, malformed_ratio=0.05, seed=9)
    first = [
        (p.kind, p.record, p.payload) for p in itertools.islice(plan_messages(RECORDS, config, "r"), 300)
    ]
    again = [
        (p.kind, p.record, p.payload) for p in itertools.islice(plan_messages(RECORDS, config, "r"), 300)
    ]
    assert first == again


def test_encoded_ticket_carries_send_time_and_ground_truth() -> None:
    planned = next(plan_messages(RECORDS, ReplayConfig(), "run-x"))
    ticket = decode_ticket(planned.encode("run-x", 1_700_000_000.25))
    meta = ticket.metadata["loadtest"]
    assert ticket.ticket_id == planned.ticket_id
    assert meta["run"] == "run-x" and meta["sent_at"] == 1_700_000_000.25
    assert meta["truth"] == {"intent": "card_arrival", "category": "Order/Delivery", "priority": "Medium"}
    assert json.loads(planned.encode("run-x", 1.0))["text"] == planned.record.text  # type: ignore[union-attr]


def test_ratios_above_one_are_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        ReplayConfig(duplicate_ratio=0.7, malformed_ratio=0.5)
