"""docker-compose.yml carries the essentials of issue #8 and agrees with the code it deploys."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from feedback.settings import FeedbackSettings
from loadtest.settings import LoadtestSettings
from tests.deploy.stack import (
    COMPOSE_FILE,
    REPO,
    InterpolationError,
    cli_command,
    cli_envvars,
    load_compose,
    service_env,
    settings_env_names,
)
from trainer.config import TrainerSettings
from triage.cli import main as triage_cli
from worker.settings import WorkerSettings

SECRET = "compose-test-secret"
ENV = {"REDIS_PASSWORD": SECRET}
APP_SERVICES = ("worker", "worker-gpu", "trainer", "replay")
PROFILES = {
    "worker-gpu": ["gpu"], "trainer": ["train"], "replay": ["loadtest"], "prometheus": ["monitoring"],
    "grafana": ["monitoring"], "feedback": ["feedback"],
}
ALWAYS_ON = ("kafka", "redis", "topic-init", "worker")
# The settings class each container's process builds: `triage <command>`, or the worker's for topic-init.
SETTINGS_BY_COMMAND: dict[str, type[BaseSettings]] = {
    "worker": WorkerSettings,
    "train": TrainerSettings,
    "replay": LoadtestSettings,
    "feedback": FeedbackSettings,
}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = load_compose(ENV)["services"]
    return services


@pytest.fixture(scope="module")
def raw_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = load_compose()["services"]
    return services


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _settings_for(name: str, service: dict[str, Any]) -> type[BaseSettings]:
    if name == "topic-init":
        return WorkerSettings
    return SETTINGS_BY_COMMAND[_command(service)[0]]


def _build_settings(settings: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """Build a settings class from exactly this environment, as the container would."""
    for key in list(os.environ):
        if key.upper().startswith("TRIAGE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return settings()


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(ALWAYS_ON) | set(PROFILES) <= set(services)
    for name in ALWAYS_ON:
        assert not services[name].get("profiles"), f"{name} must start with a plain `docker compose up`"
    for name, profiles in PROFILES.items():
        assert services[name].get("profiles") == profiles


def test_kafka_runs_kraft_from_the_official_image(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    env = service_env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert "zookeeper" not in COMPOSE_FILE.read_text(encoding="utf-8").lower()
    internal = service_env(services["worker"])["TRIAGE_BROKERS"]
    assert internal in env["KAFKA_ADVERTISED_LISTENERS"], "workers must dial the listener Kafka advertises"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from topic-init"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "redis", "worker", "worker-gpu", "prometheus"):
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    kafka_check = " ".join(services["kafka"]["healthcheck"]["test"])
    assert re.search(r"/opt/kafka/bin/kafka-(broker-api-versions|topics)\.sh", kafka_check)
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_worker_healthcheck_probes_the_worker_web_port(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "worker-gpu"):
        worker = services[name]
        port = service_env(worker)["TRIAGE_WEB_PORT"]
        probe = " ".join(worker["healthcheck"]["test"])
        assert worker["healthcheck"]["test"][:2] == ["CMD", "python"], "slim images have no curl"
        assert "urllib.request" in probe
        assert f"http://localhost:{port}/health" in probe
        assert str(port) in [str(p) for p in worker.get("expose", [])]


def test_depends_on_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency == "topic-init" else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {dependency}"
            if not service.get("profiles"):
                assert not services[dependency].get("profiles"), f"{name} needs profiled {dependency}"
    worker_deps = services["worker"]["depends_on"]
    assert {"kafka", "redis", "topic-init"} <= set(worker_deps)


def test_worker_scales_out(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "worker-gpu"):
        worker = services[name]
        for key in ("container_name", "ports", "hostname"):
            assert key not in worker, f"`docker compose up --scale {name}=3` fails with a fixed {key}"
        env = service_env(worker)
        assert env["TRIAGE_GROUP_ID"], "replicas share one consumer group"
    assert service_env(services["worker"])["TRIAGE_GROUP_ID"] == service_env(services["worker-gpu"])["TRIAGE_GROUP_ID"]


def test_gpu_worker_reserves_a_gpu_and_uses_the_cuda_image(services: dict[str, dict[str, Any]]) -> None:
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device.get("capabilities", []) for device in devices)
    assert gpu["build"]["args"]["VARIANT"] == "cuda"
    assert services["worker"]["build"]["args"]["VARIANT"] == "cpu"
    assert gpu["image"] != services["worker"]["image"], "CPU and CUDA images need different tags"
    assert service_env(gpu)["TRIAGE_DEVICE"] == "cuda"


def test_trainer_writes_the_checkpoint_the_workers_read(services: dict[str, dict[str, Any]]) -> None:
    def mounts(name: str) -> dict[str, tuple[str, str]]:
        found = {}
        for volume in services[name]["volumes"]:
            source, target, *mode = volume.split(":")
            found[source] = (target, mode[0] if mode else "rw")
        return found

    trainer, worker = mounts("trainer"), mounts("worker")
    assert trainer["models"][1] == "rw" and worker["models"][1] == "ro"
    assert trainer["models"][0] == worker["models"][0]
    assert "models" in load_compose()["volumes"], "a named volume shared by trainer and workers"
    command = _command(services["trainer"])
    output = command[command.index("--output") + 1]
    assert output.startswith(trainer["models"][0])
    assert service_env(services["worker"])["TRIAGE_MODEL_DIR"] == f"{output}/latest"


def test_secrets_are_required_never_defaulted(raw_services: dict[str, dict[str, Any]]) -> None:
    secret_keys = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH", re.IGNORECASE)
    found = 0
    for name, service in raw_services.items():
        for key, value in service_env(service).items():
            if secret_keys.search(key):
                found += 1
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), f"{name}.{key} must be ${{VAR:?message}}"
    assert found >= 2
    redis_command = " ".join(raw_services["redis"]["command"])
    assert "--requirepass ${REDIS_PASSWORD:?" in redis_command
    assert service_env(raw_services["worker"])["TRIAGE_REDIS__PASSWORD"].startswith("${REDIS_PASSWORD:?")
    with pytest.raises(InterpolationError, match="REDIS_PASSWORD"):
        load_compose({})


def test_redis_password_reaches_the_workers(services: dict[str, dict[str, Any]]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == SECRET
    assert service_env(services["worker"])["TRIAGE_REDIS__PASSWORD"] == SECRET
    assert service_env(services["worker"])["TRIAGE_REDIS__URL"].startswith("redis://redis:")


def test_triage_env_names_are_real_settings(services: dict[str, dict[str, Any]]) -> None:
    global_envvars = cli_envvars(triage_cli)
    every_valid: set[str] = set(global_envvars)
    for name, service in services.items():
        triage_env = {key for key in service_env(service) if key.upper().startswith("TRIAGE_")}
        if not triage_env:
            continue
        settings = _settings_for(name, service)
        valid = settings_env_names(settings) | global_envvars
        if name != "topic-init":
            valid |= cli_envvars(cli_command(triage_cli, _command(service)[0]))
        every_valid |= valid
        unknown = {key for key in triage_env if key.upper() not in valid}
        assert not unknown, f"{name}: {sorted(unknown)} are not fields of {settings.__name__}"
    mentioned = set(re.findall(r"\bTRIAGE_[A-Z0-9_]+", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert mentioned - every_valid == set(), "docker-compose.yml names TRIAGE_* variables nothing reads"


def test_compose_values_build_valid_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, service in services.items():
        env = service_env(service)
        if not any(key.startswith("TRIAGE_") for key in env):
            continue
        with monkeypatch.context() as patch:
            _build_settings(_settings_for(name, service), env, patch)  # a bad value raises ValidationError
    with monkeypatch.context() as patch:
        worker = _build_settings(WorkerSettings, service_env(services["worker"]), patch)
    assert isinstance(worker, WorkerSettings)
    assert worker.topics.partitions == 3, "issue #8: the input topic has 3 partitions"
    assert worker.topics.create is False, "topics come from topic-init, as where workers lack create rights"
    assert worker.redis.password is not None and worker.redis.password.get_secret_value() == SECRET


def test_required_worker_settings_are_set(services: dict[str, dict[str, Any]]) -> None:
    env = service_env(services["worker"])
    required = [
        f"{WorkerSettings.model_config.get('env_prefix', '')}{name}".upper()
        for name, field in WorkerSettings.model_fields.items()
        if field.is_required()
    ]
    assert [name for name in required if name not in env] == []


def test_topic_names_agree_across_services(services: dict[str, dict[str, Any]]) -> None:
    def topics(name: str) -> dict[str, str]:
        return {k: v for k, v in service_env(services[name]).items() if k.startswith("TRIAGE_TOPICS__")}

    worker = topics("worker")
    assert {k: worker[k] for k in topics("topic-init")} == topics("topic-init")
    assert {k: worker[k] for k in topics("replay")} == topics("replay")
    names = {"INCOMING", "ENRICHED", "ROUTE_PREFIX", "ONCALL", "REVIEW", "DEADLETTER"}
    assert {f"TRIAGE_TOPICS__{n}" for n in names} <= set(topics("topic-init"))


def test_app_commands_are_real_cli_commands_and_options(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        command = _command(services[name])
        click_command = cli_command(triage_cli, command[0])
        options = {opt for param in click_command.params for opt in (*param.opts, *param.secondary_opts)}
        used = {part.split("=", 1)[0] for part in command[1:] if part.startswith("--")}
        assert used <= options, f"{name}: `triage {command[0]}` has no {sorted(used - options)}"


def test_build_contexts_and_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./deploy/"):
                assert (REPO / source).is_file(), f"{name} mounts missing {source}"
