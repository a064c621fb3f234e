"""Fuzz the whole path a message takes in the worker, past what ``tests/schemas`` fuzzes.

``tests/schemas/test_validation.py`` shows ``decode_ticket`` never raises anything but a rejection. Here
random bytes and random JSON go through the worker's own micro-batch code (validation, dead letter,
routing) with a no-op model and no Redis, and every message must come out as exactly one outcome: a
dead letter that keeps its bytes, or enriched records that serialise and parse back to the ticket.
"""

from __future__ import annotations

import asyncio
import json
import string
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.noop import NoopPredictor
from schemas import DeadLetter, EnrichedTicket, decode_ticket
from schemas.topics import TopicSettings
from tests.worker.kit import InProcess
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import ModelClient
from worker.pipeline import Outcome, TriagePipeline
from worker.records import InRecord
from worker.settings import RedisSettings, WorkerSettings

TOPICS = TopicSettings(
    incoming="in", enriched="out", route_prefix="route.", oncall="oncall", review="review", deadletter="dead"
)
CAP = 256

# Text full of what breaks naive code: controls, lone surrogates, zero-width and RTL marks, emoji, NULs.
hostile_text = st.text(
    alphabet=st.characters(codec=None, categories=None, exclude_characters=None), max_size=60
) | st.sampled_from(["\ud800", "a\udfffb", "\u202e\u200b", "\x00\x07\x1b[31m", "💳🙁", "  \n\t ", "e\u0301"])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=20,
)
tickets = st.fixed_dictionaries(
    {"ticket_id": st.text(alphabet=string.printable, min_size=0, max_size=140) | json_scalars},
    optional={"text": hostile_text | json_scalars, "metadata": json_values, "created_at": json_scalars,
              "channel": json_scalars, "extra": json_values},
)


def _encode(obj: object, ascii_only: bool) -> bytes:
    """JSON as a client would send it; lone surrogates only survive as ``\\u`` escapes."""
    try:
        return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True).encode("utf-8")


payloads = (
    st.binary(max_size=600)
    | st.builds(_encode, tickets, st.booleans())
    | st.builds(_encode, json_values, st.booleans())
)


def _pipeline() -> TriagePipeline:
    config = WorkerSettings(
        model_backend="noop", topics=TOPICS, redis=RedisSettings(enabled=False), deadletter_payload_bytes=CAP
    )
    metrics = WorkerMetrics()
    model = cast(ModelClient, InProcess(NoopPredictor()))
    return TriagePipeline(config, TriageCache(config.redis, metrics), model, metrics)


PIPELINE = _pipeline()


@given(st.lists(payloads, min_size=1, max_size=8))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_message_becomes_exactly_one_faithful_outcome(values: list[bytes]) -> None:
    records = [InRecord("in", 0, offset, b"k", value) for offset, value in enumerate(values)]

    async def run() -> list[Outcome]:
        return await PIPELINE.process(records)

    outcomes = asyncio.run(run())
    assert [outcome.source for outcome in outcomes] == records, "one outcome per message, none dropped"
    for outcome in outcomes:
        raw, produced = outcome.source.value or b"", outcome.records
        assert produced and all(r.source is outcome.source for r in produced)
        topics = [r.topic for r in produced]
        if topics == ["dead"]:
            letter = DeadLetter.model_validate_json(produced[0].value)
            assert letter.raw_payload() == raw[:CAP]
            assert letter.payload_size == len(raw) and letter.payload_truncated == (len(raw) > CAP)
            assert letter.error.message
        else:
            assert topics[:2] == ["out", "route.general-inquiry"], topics
            enriched = EnrichedTicket.model_validate_json(produced[0].value)
            ticket = decode_ticket(raw)
            assert enriched.model_dump(mode="json", exclude={"triage"}) == ticket.model_dump(mode="json")
            assert all(r.key == ticket.ticket_id.encode() for r in produced)
