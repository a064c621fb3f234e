"""The feedback process in compose, its alerts and the Grafana dashboard: only metrics that really exist."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from feedback.metrics import FeedbackMetrics
from tests.deploy.stack import REPO, load_compose, service_env
from worker.metrics import WorkerMetrics

ALERTS = REPO / "deploy" / "prometheus" / "feedback-alerts.yml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "ticket-triage.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
FAUST_LAG = {"faust_topic_partition_end_offset", "faust_topic_partition_offset_commited"}


def _series(registry: Any) -> set[str]:
    return {family.name + suffix for family in registry.collect()
            for suffix in _SUFFIXES.get(family.type, ("",))}


def _used(expr: str) -> set[str]:
    return set(re.findall(r"\b(?:triage|faust)_[a-z_]+", expr))


def _services() -> dict[str, Any]:
    services: dict[str, Any] = load_compose({"REDIS_PASSWORD": "x"})["services"]
    return services


def test_feedback_alerts_use_only_what_the_feedback_process_exports() -> None:
    exported = _series(FeedbackMetrics({}).registry)
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    used: set[str] = set()
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "warning") and rule["annotations"]["summary"]
        used |= _used(rule["expr"])
    assert used - exported == set(), f"alerts on metrics nobody exports: {used - exported}"
    assert {"triage_feedback_paging_total", "triage_feedback_category_total", "triage_feedback_messages_total",
            "triage_feedback_category_drift", "triage_feedback_scope_drift"} <= used


def test_the_dashboard_queries_only_exported_metrics() -> None:
    exported = _series(FeedbackMetrics({}).registry) | _series(WorkerMetrics().registry) | FAUST_LAG
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {name for panel in panels for target in panel["targets"] for name in _used(target["expr"])}
    assert used - exported == set(), f"panels query metrics nobody exports: {used - exported}"
    titles = " ".join(panel["title"] for panel in panels)
    for what in ("accuracy", "Paging precision and recall", "Drift", "Throughput"):
        assert what in titles


def test_prometheus_scrapes_the_feedback_service_and_loads_its_rules() -> None:
    services = _services()
    config = yaml.safe_load(PROMETHEUS.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "triage-feedback")
    port = int(service_env(services["feedback"])["TRIAGE_FEEDBACK__WEB_PORT"])
    assert job["dns_sd_configs"][0] == {"names": ["feedback"], "type": "A", "port": port, "refresh_interval": "15s"}
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    assert mounts["./deploy/prometheus/feedback-alerts.yml"] in config["rule_files"]


def test_grafana_is_provisioned_in_the_monitoring_profile() -> None:
    grafana = _services()["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert grafana["healthcheck"]["test"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    for source in mounts:
        assert (REPO / source).is_file(), source
    provider = yaml.safe_load((REPO / "deploy" / "grafana" / "dashboards.yml").read_text())["providers"][0]
    assert mounts["./deploy/grafana/dashboards/ticket-triage.json"].startswith(provider["options"]["path"])
    source = yaml.safe_load((REPO / "deploy" / "grafana" / "datasources.yml").read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    panel_sources = {p["datasource"]["uid"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert panel_sources == {source["uid"]}
