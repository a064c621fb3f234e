"""``triage demo --feedback``: one feedback round on drifted traffic, measured live before and after.

Hurried-typing copies of the test split (wording the checkpoint was not trained on) go through a real worker;
simulated agents send the true labels of a share of them; the feedback process measures live category accuracy;
the joined feedback becomes a data folder, a candidate is trained on it from the current weights, the promotion
gate decides, the worker hot-reloads the promoted checkpoint, and a second batch of drifted tickets is measured.
Everything runs on a copy of the checkpoint, so the user's ``latest`` is never moved.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from inference.checkpoint import read_manifest, resolve_checkpoint
from loadtest.broker import EmbeddedBroker, create_topics
from loadtest.metrics import metric_total, scrape
from loadtest.processes import stop_signals
from loadtest.settings import LoadtestSettings
from loadtest.stack import running_feedback, running_worker
from schemas.topics import TopicSettings
from trainer.augment import hurried
from trainer.data import Split, load_data

__all__ = ["LiveAccuracy", "run_feedback_demo"]


@dataclass(frozen=True)
class LiveAccuracy:
    """Live category accuracy of one model version over one round's joined feedback."""

    version: str
    joined: int
    accuracy: float


def _live_accuracy(metrics: str, version: str, since: tuple[float, float]) -> tuple[float, float]:
    """(agreeing, joined) feedback of ``version`` in the feedback process's counters, minus ``since``."""
    agree = total = 0.0
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "triage_feedback_category_total" and sample.labels["model_version"] == version:
                total += sample.value
                agree += sample.value if sample.labels["agree"] == "true" else 0.0
    return agree - since[0], total - since[1]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.5)


def _produce(brokers: str, topic: str, messages: Sequence[tuple[str, dict[str, str]]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=brokers, acks="all", linger_ms=20)
    try:
        for key, value in messages:
            producer.send(topic, key=key.encode(), value=json.dumps(value).encode())
        producer.flush()
    finally:
        producer.close()


def _health_version(metrics_url: str) -> str | None:
    try:
        with urllib.request.urlopen(metrics_url.replace("/metrics", "/health"), timeout=2) as response:  # noqa: S310
            return str(json.loads(response.read()).get("model_version"))
    except (OSError, ValueError):
        return None


def run_feedback_demo(settings: LoadtestSettings, model_dir: Path, redis_url: str, count: int = 600,
                      share: float = 0.5, preset: str = "tiny", seed: int = 0) -> int:
    """Run one feedback round and print live accuracy before and after; 0 when the round completed."""
    from trainer.config import TrainArgs
    from trainer.feedback import feedback_split, merged_folder, snapshot
    from trainer.promote import promote
    from trainer.train import run_training

    console = Console()
    run_id = secrets.token_hex(3)
    out_dir = settings.results_dir / "loadtest" / f"feedback-demo-{run_id}"
    models = out_dir / "models"
    current = resolve_checkpoint(model_dir)
    shutil.copytree(current, models / current.name)
    os.symlink(current.name, models / "latest")
    data = load_data(settings.data_dir, settings.hub_dataset)
    rng = random.Random(seed)
    order = rng.sample(range(len(data.test)), min(2 * count, len(data.test)))
    drifted = [(hurried(data.test.texts[i], rng), data.test.intents[i]) for i in order]
    rounds = {"before": drifted[: len(drifted) // 2], "after": drifted[len(drifted) // 2 :]}
    topics = TopicSettings.namespaced(f"feedback-demo-{run_id}")
    console.print(f"Feedback demo: {len(drifted)} test tickets typed in a hurry, agents label {share:.0%}; "
                  f"results in {out_dir}")
    with stop_signals(), ExitStack() as stack:
        brokers = stack.enter_context(EmbeddedBroker(log_path=out_dir / "broker.log")).bootstrap
        create_topics(brokers, {t: topics.partitions for t in (topics.incoming, topics.enriched, topics.feedback,
                                                               topics.deadletter)})
        worker = stack.enter_context(running_worker({
            "brokers": brokers, "group_id": f"feedback-demo-{run_id}", "topics": topics.model_dump(),
            "model_dir": str(models / "latest"), "redis": {"enabled": False}, "reload_interval_s": 2,
        }, out_dir / "worker.log"))
        feedback_url = stack.enter_context(running_feedback({
            "brokers": brokers, "topics": topics.model_dump(), "model_dir": str(models / "latest"),
            "feedback": {"group_id": f"feedback-demo-{run_id}-feedback", "data_dir": str(out_dir / "feedback"),
                         "store": {"url": redis_url, "key_prefix": f"feedback-demo-{run_id}", "ttl_s": 3600}},
        }, out_dir / "feedback.log"))
        results: dict[str, LiveAccuracy] = {}

        def live_round(name: str) -> LiveAccuracy:
            tickets = rounds[name]
            version = _health_version(worker.metrics_url) or ""
            start = scrape(feedback_url)
            published = metric_total(start, "triage_feedback_published_total")
            since = _live_accuracy(start, version, (0.0, 0.0))
            ids = [f"{name}-{i}" for i in range(len(tickets))]
            _produce(brokers, topics.incoming,
                     [(t, {"ticket_id": t, "text": text}) for t, (text, _) in zip(ids, tickets, strict=True)])
            wanted = published + len(tickets)
            _wait(lambda: metric_total(scrape(feedback_url), "triage_feedback_published_total") >= wanted,
                  "published tickets")
            labelled = [(f"{name}-{i}", label) for i, (_, label) in enumerate(tickets) if rng.random() < share]
            _produce(brokers, topics.feedback, [(t, {"ticket_id": t, "label": label, "agent": "demo"})
                                               for t, label in labelled])
            _wait(lambda: _live_accuracy(scrape(feedback_url), version, since)[1] >= len(labelled), "joined feedback")
            agree, joined = _live_accuracy(scrape(feedback_url), version, since)
            result = LiveAccuracy(version, int(joined), agree / joined)
            console.print(f"Live category accuracy {name}: {result.accuracy:.2%} over {result.joined} agents' labels "
                          f"(model {version})")
            return result

        results["before"] = live_round("before")
        made = snapshot(out_dir / "feedback", data.taxonomy, held_out=0.2)
        console.print(f"Feedback data: {made.path} ({made.train} train, {made.test} held out); training the "
                      f"{preset} preset from the current weights…")
        merged = merged_folder(data, out_dir / "feedback", weight=3, out=out_dir / "merged")
        candidate = run_training(TrainArgs(preset=preset, data_dir=merged, output=models, base_model=str(current),
                                           results_dir=None), link_latest=False)
        test = Split(data.test.texts[::10], data.test.intents[::10])
        decision = promote(candidate, models / "latest", {"held-out feedback": feedback_split(made.path, "test"),
                                                          "base test (every 10th)": test},
                           high_recall_bar=0.9, tolerance=0.01)
        for set_name, pair in decision.scores.items():
            console.print(f"Gate, {set_name}: category accuracy current {pair['current'].category_accuracy:.2%}, "
                          f"candidate {pair['candidate'].category_accuracy:.2%}")
        if not decision.promote:
            console.print("Gate: refused — " + "; ".join(decision.reasons))
            return 1
        version = read_manifest(candidate)["version"]
        console.print(f"Gate: promoted {version}; waiting for the worker's hot reload…")
        _wait(lambda: _health_version(worker.metrics_url) == version, "hot reload", 120)
        console.print("Worker: serving the candidate")
        results["after"] = live_round("after")
    gain = results["after"].accuracy - results["before"].accuracy
    console.print(f"[bold]One feedback round: live category accuracy {results['before'].accuracy:.2%} → "
                  f"{results['after'].accuracy:.2%} ({gain:+.2%})[/]")
    _plot(results, out_dir / "feedback-round.png")
    console.print(f"plot: {out_dir / 'feedback-round.png'}")
    return 0


def _plot(results: dict[str, LiveAccuracy], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = list(results)
    bars = ax.bar(names, [100 * results[n].accuracy for n in names], color=["#999999", "#2a7ab0"])
    for bar, name in zip(bars, names, strict=True):
        ax.annotate(f"{100 * results[name].accuracy:.1f}%\n{results[name].version[:15]}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("live category accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Drifted traffic: one feedback round")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
