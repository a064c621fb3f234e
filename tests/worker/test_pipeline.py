"""One micro-batch through the pipeline, no Kafka: with the real tiny model and the real Redis, or with neither
where only what happens around the model is checked."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
import redis

from inference.noop import NoopPredictor
from schemas.enums import ErrorCode
from schemas.messages import DeadLetter, Triage
from schemas.topics import TopicSettings
from tests.worker.kit import InProcess
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import ModelClient, Predictor, load_predictor
from worker.pipeline import TriagePipeline
from worker.records import InRecord, OutRecord
from worker.settings import RedisSettings, WorkerSettings


def make_pipeline(settings: WorkerSettings, predictor: Predictor) -> tuple[TriagePipeline, TriageCache]:
    metrics = WorkerMetrics()
    cache = TriageCache(settings.redis, metrics)
    return TriagePipeline(settings, cache, cast(ModelClient, InProcess(predictor)), metrics), cache


class Recording:
    """The real model, remembering what it was asked and failing on texts that contain ``boom``."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.version = inner.version
        self.calls: list[list[str]] = []

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        self.calls.append(list(texts))
        if any("boom" in t for t in texts):
            raise RuntimeError("model exploded")
        return self.inner.predict(texts)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Predictor:
    return load_predictor(WorkerSettings(model_dir=tiny_checkpoint, torch_threads=1), None)


@pytest.fixture
def settings(
    tiny_checkpoint: Path, redis_url: str, unique: Callable[[str], str], redis_client: redis.Redis
) -> Iterator[WorkerSettings]:
    prefix = unique("batch")
    yield WorkerSettings(
        model_dir=tiny_checkpoint,
        topics=TopicSettings(),
        redis=RedisSettings(url=redis_url, key_prefix=prefix, timeout_ms=2000),
        deadletter_payload_bytes=16,
    )
    for pattern in (f"{prefix}:*", f"{prefix}-ticket:*"):
        for key in redis_client.scan_iter(pattern):
            redis_client.delete(key)


@pytest.fixture
def offline() -> WorkerSettings:
    """No model and no Redis: for what the pipeline does around the model (validation, routing, limits)."""
    return WorkerSettings(
        model_backend="noop", topics=TopicSettings(), redis=RedisSettings(enabled=False), deadletter_payload_bytes=16
    )


def records(values: Sequence[bytes | None]) -> list[InRecord]:
    return [InRecord("tickets.incoming", 0, i, f"k{i}".encode(), v, 1.0) for i, v in enumerate(values)]


def body(ticket_id: str, text: str) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "text": text}).encode()


def run_batches(settings: WorkerSettings, predictor: Predictor, *batches: list[InRecord]) -> list[list[OutRecord]]:
    async def run() -> list[list[OutRecord]]:
        pipeline, cache = make_pipeline(settings, predictor)
        out = []
        for batch in batches:
            outcomes = await pipeline.process(batch)
            assert [o.source for o in outcomes] == batch, "one outcome per record, in input order"
            out.append([r for outcome in outcomes for r in outcome.records])
            await cache.close()
        return out

    return asyncio.run(run())


def by_topic(out: list[OutRecord], topic: str) -> dict[bytes | None, OutRecord]:
    return {r.key: r for r in out if r.topic == topic}


def test_duplicates_in_a_batch_are_classified_once_and_later_served_from_cache(
    settings: WorkerSettings, model: Predictor
) -> None:
    recording = Recording(model)
    first = records([body("a", "I lost my card"), body("b", " I lost my card "), body("c", "Top up failed")])
    again = records([body("d", "I lost my card"), body("e", "What is the exchange rate?")])
    out1, out2 = run_batches(settings, recording, first, again)
    assert sorted(map(sorted, recording.calls)) == [["I lost my card", "Top up failed"], ["What is the exchange rate?"]]
    enriched1 = by_topic(out1, settings.topics.enriched)
    enriched2 = by_topic(out2, settings.topics.enriched)
    assert set(enriched1) == {b"a", b"b", b"c"} and set(enriched2) == {b"d", b"e"}
    triage = {k: json.loads(r.value)["triage"] for k, r in {**enriched1, **enriched2}.items()}
    assert triage[b"a"]["intent"] == triage[b"b"]["intent"] == triage[b"d"]["intent"]
    assert triage[b"d"]["cached"] is True and triage[b"e"]["cached"] is False and triage[b"a"]["cached"] is False
    assert [r.source.offset for r in out1 if r.topic == settings.topics.enriched] == [0, 1, 2], "input order kept"


def test_a_model_failure_dead_letters_only_the_failing_ticket(settings: WorkerSettings, model: Predictor) -> None:
    recording = Recording(model)
    (out,) = run_batches(
        settings, recording, records([body("ok-1", "card not working"), body("bad", "boom"), body("ok-2", "hi")])
    )
    assert set(by_topic(out, settings.topics.enriched)) == {b"ok-1", b"ok-2"}
    assert set(by_topic(out, settings.topics.deadletter)) == {b"bad"}
    letter = DeadLetter.model_validate_json(by_topic(out, settings.topics.deadletter)[b"bad"].value)
    assert letter.error.code is ErrorCode.PROCESSING_FAILED and "RuntimeError" in letter.error.message
    assert letter.ticket_id == "bad" and letter.source_offset == 1


def test_bad_records_are_dead_lettered_in_place(offline: WorkerSettings) -> None:
    (out,) = run_batches(
        offline, NoopPredictor(), records([b"not json", body("fine", "hello"), None, b"\xff" * 40])
    )
    offsets = [r.source.offset for r in out]
    assert offsets == sorted(offsets), "every output in its input's place"
    lettered = [r.source.offset for r in out if r.topic == offline.topics.deadletter]
    assert lettered == [0, 2, 3], "each bad record dead-lettered once"
    assert {r.source.offset for r in out if r.topic != offline.topics.deadletter} == {1}
    letters = [DeadLetter.model_validate_json(r.value) for r in out if r.topic == offline.topics.deadletter]
    assert [letter.error.code for letter in letters] == [
        ErrorCode.INVALID_JSON, ErrorCode.EMPTY_MESSAGE, ErrorCode.INVALID_UTF8,
    ]
    assert letters[2].payload_truncated and letters[2].payload_size == 40 and letters[2].payload_encoding == "base64"
    assert b"fine" in by_topic(out, offline.topics.enriched)


class Hostile:
    """A predictor that answers a non-``Triage`` for texts containing ``poison`` (a bug, not a model error)."""

    version = "noop"

    def __init__(self) -> None:
        self.inner = NoopPredictor()

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        answers = self.inner.predict(texts)
        return [object() if "poison" in t else a for t, a in zip(texts, answers, strict=True)]  # type: ignore[misc]


def test_a_record_that_cannot_be_routed_is_dead_lettered_alone(offline: WorkerSettings) -> None:
    neighbours = [body(f"n{i}", f"I was charged twice for order {i}") for i in range(6)]
    (out,) = run_batches(offline, Hostile(), records([*neighbours[:3], body("p", "poison"), *neighbours[3:]]))
    assert set(by_topic(out, offline.topics.enriched)) == {f"n{i}".encode() for i in range(6)}
    (letter,) = [DeadLetter.model_validate_json(r.value) for r in out if r.topic == offline.topics.deadletter]
    assert letter.error.code is ErrorCode.PROCESSING_FAILED and letter.source_offset == 3


def test_a_redelivered_ticket_is_published_byte_for_byte_and_a_new_one_is_served_from_cache(
    settings: WorkerSettings, model: Predictor
) -> None:
    batch = records([body("r-1", "I lost my card"), body("r-2", "Top up failed")])
    newcomer = records([body("r-3", "I lost my card")])
    first, replayed, fresh = run_batches(settings, model, batch, batch, newcomer)
    assert [(r.topic, r.key, r.value, r.headers) for r in replayed] == [
        (r.topic, r.key, r.value, r.headers) for r in first
    ], "a replay publishes the very same records"
    assert [json.loads(r.value)["triage"]["cached"] for r in by_topic(first, settings.topics.enriched).values()] == [
        False, False,
    ], "the first delivery is classified"
    again = json.loads(by_topic(fresh, settings.topics.enriched)[b"r-3"].value)["triage"]
    original = json.loads(by_topic(first, settings.topics.enriched)[b"r-1"].value)["triage"]
    assert again["cached"] is True and again["intent"] == original["intent"]
    assert again["triaged_at"] != original["triaged_at"], "a new ticket gets its own triage time"


def test_a_valid_tickets_dead_letter_keeps_its_whole_payload(settings: WorkerSettings, model: Predictor) -> None:
    """Only invalid messages are cut at ``deadletter_payload_bytes`` (16 here): a valid ticket can be replayed."""
    payload = body("bad", "boom " + "x" * 5000)
    (out,) = run_batches(settings, Recording(model), records([payload, body("ok", "card not working")]))
    letter = DeadLetter.model_validate_json(by_topic(out, settings.topics.deadletter)[b"bad"].value)
    assert not letter.payload_truncated and letter.raw_payload() == payload
    assert set(by_topic(out, settings.topics.enriched)) == {b"ok"}


def test_a_ticket_whose_output_is_over_the_brokers_limit_is_dead_lettered_and_the_batch_goes_on(
    offline: WorkerSettings,
) -> None:
    """Incompressible metadata makes the enriched record larger than ``max_output_bytes`` even with lz4."""
    limit = 20_000
    config = offline.model_copy(update={"max_output_bytes": limit})
    big = body("big", "I lost my card")[:-1] + b', "metadata": {"blob": "' + os.urandom(12_000).hex().encode() + b'"}}'
    (out,) = run_batches(config, NoopPredictor(), records([body("a", "hi"), big, body("b", "hello")]))
    assert [r.key for r in out if r.topic == config.topics.enriched] == [b"a", b"b"]
    (record,) = [r for r in out if r.topic == config.topics.deadletter]
    letter = DeadLetter.model_validate_json(record.value)
    assert letter.error.code is ErrorCode.OUTPUT_TOO_LARGE and letter.ticket_id == "big"
    assert letter.payload_truncated, "the dead letter itself would be over the limit: cut like a bad message's"
    assert letter.payload_size == len(big) and record.fits(limit, "lz4")
    small = body("fits", "I lost my card")[:-1] + b', "metadata": {"blob": "' + b"ab" * 12_000 + b'"}}'
    (out,) = run_batches(config, NoopPredictor(), records([small]))
    assert set(by_topic(out, config.topics.enriched)) == {b"fits"}, "over the limit plain, under it compressed"
    assert not by_topic(out, config.topics.deadletter)
