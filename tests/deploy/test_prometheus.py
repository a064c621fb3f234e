"""deploy/prometheus: scrapes every worker replica and alerts only on metrics the worker exports."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.stack import REPO, load_compose, service_env
from worker.metrics import WorkerMetrics

PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _load(path: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _exported_series() -> set[str]:
    """Series names WorkerMetrics puts on /metrics, from the real registry."""
    names: set[str] = set()
    for family in WorkerMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_scrapes_each_worker_service_on_its_web_port() -> None:
    services = load_compose({"REDIS_PASSWORD": "x"})["services"]
    jobs = {job["job_name"]: job for job in _load(PROMETHEUS)["scrape_configs"]}
    scraped = {}
    for job in jobs.values():
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                scraped[name] = (sd["port"], job.get("metrics_path", "/metrics"))
    for name in ("worker", "worker-gpu"):
        port = int(service_env(services[name])["TRIAGE_WEB_PORT"])
        assert scraped[name] == (port, "/metrics"), f"{name} replicas are not scraped"


def test_compose_mounts_the_config_and_rules() -> None:
    prometheus = load_compose({"REDIS_PASSWORD": "x"})["services"]["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    for rule_file in _load(PROMETHEUS)["rule_files"]:
        assert rule_file in mounts.values(), f"{rule_file} is not mounted into the container"


def test_alerts_use_only_exported_metrics() -> None:
    exported = _exported_series()
    rules = [rule for group in _load(ALERTS)["groups"] for rule in group["rules"]]
    assert len(rules) >= 5
    used: set[str] = set()
    for rule in rules:
        assert rule["alert"] and rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"]
        used.update(re.findall(r"\b(?:triage|faust)_[a-z_]+", rule["expr"]))
    assert used, "alerts must watch the worker's own metrics"
    assert used - exported == set(), f"alerts reference metrics the worker does not export: {used - exported}"
    lag = {"faust_topic_partition_end_offset", "faust_topic_partition_offset_commited"}
    assert lag | {"triage_publish_failures_total", "triage_dead_letters_total"} <= used
    health = {"triage_model_up", "triage_oldest_unconfirmed_produce_seconds"}
    assert health <= used, f"no alert watches {health - used}: what /health reports must page someone"
    assert any('reason="model_crashed"' in rule["expr"] for rule in rules), "a poison ticket is alerted on"
