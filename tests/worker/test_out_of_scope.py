"""Off-topic messages through one real worker: reviewed as General Inquiry, never paged; real theft still pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import redis

from loadtest.broker import EmbeddedBroker
from schemas.enums import Priority
from tests.worker.kit import drop_keys, keys_seen, produce, read_topics, ticket, topic_settings, worker_env
from tests.workers import WorkerProcess

OFF_TOPIC = {
    "off-hi": "hi",
    "off-thanks": "thanks!",
    "off-mash": "asdkjh qwe zzz",
    "off-weather": "what is the weather like in Paris tomorrow",
    "off-hotel": "I want to book a hotel room for two nights",
}
STOLEN = {"theft-terse": "lost my card help", "theft-plain": "my card got stolen"}


def test_off_topic_goes_to_review_unpaged_while_a_stolen_card_pages(
    broker: EmbeddedBroker, redis_url: str, tiny_checkpoint: Path, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    name = unique("scope")
    topics = topic_settings(name)
    env = worker_env(broker, redis_url, tmp_path / "state", topics, tiny_checkpoint, name)
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        messages = [ticket(key, text) for key, text in {**OFF_TOPIC, **STOLEN}.items()]
        produce(broker.bootstrap, topics.incoming, messages)
        wanted = {key for key, _ in messages}
        reviewed_keys, paged_keys = {k.encode() for k in OFF_TOPIC}, {k.encode() for k in STOLEN}
        records = read_topics(
            broker.bootstrap, topics.outputs(),
            # the route records too, so the checks below do not race the reader
            until=lambda out: wanted <= keys_seen(out, topics.enriched)
            and reviewed_keys <= keys_seen(out, topics.review) and paged_keys <= keys_seen(out, topics.oncall),
        )
        flagged = worker.metric("triage_out_of_scope_total")
    finally:
        worker.stop()
        client = redis.Redis.from_url(redis_url)
        drop_keys(client, env["TRIAGE_REDIS__KEY_PREFIX"])
        client.close()
    enriched: dict[str, dict[str, Any]] = {
        r.key.decode(): cast(dict[str, Any], r.value["triage"]) for r in records if r.topic == topics.enriched and r.key
    }
    paged = {r.key.decode() for r in records if r.topic == topics.oncall and r.key}
    reviewed = {r.key.decode() for r in records if r.topic == topics.review and r.key}
    for key in OFF_TOPIC:
        triage = enriched[key]
        assert triage["out_of_scope"] is True, key
        assert triage["scope_score"] < 0.02, key
        assert triage["category"] == "General Inquiry"
        assert triage["priority"] == Priority.LOW.value
        assert key in reviewed and key not in paged
    for key in STOLEN:
        assert enriched[key]["priority"] == Priority.HIGH.value, key
        assert key in paged
    assert flagged == len(OFF_TOPIC)
