"""Feedback test kit: a served-checkpoint stand-in, synthetic published tickets, feedback messages, the process."""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from inference.environment import flatten_env
from loadtest.broker import EmbeddedBroker, free_port
from schemas.enums import Priority
from schemas.messages import Confidence, EnrichedTicket, Ticket, Triage
from schemas.taxonomy import TAXONOMY_FILE, Taxonomy, load_taxonomy
from schemas.topics import TopicSettings
from tests.workers import WorkerProcess, metric_sum

TAXONOMY: Taxonomy = load_taxonomy()
VERSIONS = ("v-old", "v-new")


def served_folder(root: Path) -> Path:
    """What the feedback process reads of a checkpoint: its taxonomy and the validation mix in its manifest."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(TAXONOMY_FILE, root / "taxonomy.csv")
    shares = {c: 1 / (len(TAXONOMY.categories) - 1) for c in TAXONOMY.categories if c != "Out of scope"}
    (root / "checkpoint.json").write_text(json.dumps({"data": {"validation_categories": shares}}))
    return root


@dataclass(frozen=True)
class Case:
    """One ticket: its true label, and what the model published."""

    ticket_id: str
    text: str
    truth: str
    enriched: EnrichedTicket


def published_cases(prefix: str, n: int, seed: int = 0) -> list[Case]:
    """``n`` tickets under two model versions, right about 70% of the time, a tenth flagged out of scope."""
    rng = random.Random(seed)
    intents = TAXONOMY.intents
    cases = []
    for i in range(n):
        truth = rng.choice(intents)
        said = truth if rng.random() < 0.7 else rng.choice(intents)
        rule = TAXONOMY.rule(said)
        flagged = rng.random() < 0.1
        triage = Triage(
            category=TAXONOMY.out_of_scope_category if flagged else rule.category,
            priority=Priority.LOW if flagged else rule.priority, intent=said,
            confidence=Confidence(category=0.8, intent=0.7, priority=0.9), top_intents=[], needs_review=flagged,
            out_of_scope=flagged, scope_score=round(rng.random(), 4), model_version=VERSIONS[i % 2],
        )
        ticket_id = f"{prefix}-{i}"
        text = f"ticket {i}: {truth.replace('_', ' ')} please help"
        cases.append(Case(ticket_id, text, truth, EnrichedTicket.from_ticket(Ticket(ticket_id=ticket_id, text=text),
                                                                             triage)))
    return cases


def feedback_for(case: Case, by_label: bool) -> dict[str, str]:
    if by_label:  # the agent's own copy of the text is never what gets trained on
        return {"ticket_id": case.ticket_id, "label": case.truth, "agent": "a1", "text": f"agent's copy {case.text}"}
    rule = TAXONOMY.rule(case.truth)
    return {"ticket_id": case.ticket_id, "category": rule.category, "priority": rule.priority.value}


def encode(message: dict[str, str]) -> tuple[bytes, bytes]:
    return message["ticket_id"].encode(), json.dumps(message).encode()


MALFORMED: list[tuple[bytes | None, bytes, str]] = [
    (None, b"{not json", "invalid_json"),
    (b"x-1", b'{"ticket_id": "x-1"}', "missing_field"),
    (b"x-2", b'{"ticket_id": "x-2", "label": "no_such_label"}', "invalid_field"),
    (b"x-3", b'{"ticket_id": "x-3", "category": "Cards", "priority": "Urgent"}', "invalid_field"),
]
"""(key, value, dead-letter code) of feedback that must be dead-lettered."""


class FeedbackProcess(WorkerProcess):
    """``python -m feedback`` with its settings as ``TRIAGE_*`` variables, /metrics on a free port."""

    def __init__(self, name: str, broker: EmbeddedBroker, redis_url: str, topics: TopicSettings, served: Path,
                 tmp: Path) -> None:
        port = free_port()
        env = flatten_env({
            "brokers": broker.bootstrap, "topics": topics.model_dump(), "model_dir": served,
            "feedback": {"group_id": f"{name}-group", "web_port": port, "web_host": "127.0.0.1",
                         "data_dir": tmp / "feedback-data", "state_dir": tmp / f"{name}-state",
                         "session_timeout_s": 6, "batch_size": 50,
                         "store": {"url": redis_url, "key_prefix": name}},
        })
        super().__init__(name, {**env, "TRIAGE_WEB_PORT": str(port)}, tmp / f"{name}.log",
                         argv=[sys.executable, "-m", "feedback"])

    def start(self) -> FeedbackProcess:
        super().start()
        return self

    def metric(self, sample: str, **labels: str) -> float:
        status, body = self.get("/metrics")
        return metric_sum(body, sample, **labels) if status == 200 else -1.0

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if not self.running:
                pytest.fail(f"{self.name} exited ({self.returncode}) while waiting for {what}:\n{self.tail(40)}")
            time.sleep(0.3)
        pytest.fail(f"{self.name}: no {what} within {timeout:.0f} s:\n{self.tail(40)}")
