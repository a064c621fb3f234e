"""deploy/Dockerfile: multi-stage, dependencies before code, CPU and CUDA torch, non-root, tight context."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.stack import REPO, Instruction, load_compose, parse_dockerfile, stages

PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERIGNORES = (REPO / "deploy" / "Dockerfile.dockerignore", REPO / ".dockerignore")


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile()


@pytest.fixture(scope="module")
def by_stage(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    return stages(instructions)


def _torch_pin() -> str:
    pins = [dep for dep in PYPROJECT["project"]["dependencies"] if re.match(r"torch\s*==", dep)]
    assert len(pins) == 1, "pyproject.toml pins torch exactly once"
    return pins[0].replace(" ", "")


def _name(requirement: str) -> str:
    """A requirement's normalised project name (PEP 503)."""
    return canonicalize_name(Requirement(requirement).name)


def _runs(stage: list[Instruction]) -> str:
    return "\n".join(i.args for i in stage if i.keyword == "RUN")


def _stage_chain(instructions: list[Instruction], last: str, variant: str) -> list[str]:
    """Stage names from the base image to ``last``, following ``FROM <stage>`` (ARG VARIANT applied)."""
    parents = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parent = instruction.args.split()[0].replace("${VARIANT}", variant)
            parents[instruction.stage] = parent
    chain = [last]
    while parents.get(chain[-1]) in parents:
        chain.append(parents[chain[-1]])
    return list(reversed(chain))


def test_multi_stage_with_cpu_and_cuda_variants(by_stage: dict[str, list[Instruction]]) -> None:
    assert {"torch-cpu", "torch-cuda", "deps", "build", "runtime"} <= set(by_stage)
    assert list(by_stage)[-1] == "runtime", "the last stage is what `docker build` produces by default"
    compose = load_compose({"REDIS_PASSWORD": "x"})["services"]
    for name in ("worker", "worker-gpu"):
        variant = compose[name]["build"]["args"]["VARIANT"]
        assert f"torch-{variant}" in by_stage, f"{name} builds VARIANT={variant}, which has no stage"


def test_cpu_variant_installs_the_pinned_cpu_wheel(by_stage: dict[str, list[Instruction]]) -> None:
    pin = _torch_pin()
    cpu = _runs(by_stage["torch-cpu"])
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu
    assert pin in cpu
    cuda = _runs(by_stage["torch-cuda"])
    assert pin in cuda
    assert "download.pytorch.org" not in cuda, "the CUDA variant takes PyPI's default (CUDA) build"


def test_dependencies_are_installed_before_the_code_is_copied(instructions: list[Instruction]) -> None:
    for variant in ("cpu", "cuda"):
        chain = _stage_chain(instructions, "build", variant)
        ordered = [i for i in instructions if i.stage in chain]
        first_code_copy = next(n for n, i in enumerate(ordered) if i.keyword == "COPY" and i.words()[0] == ".")
        dependency_install = next(
            n for n, i in enumerate(ordered) if i.keyword == "RUN" and "-r requirements.lock" in i.args
        )
        assert dependency_install < first_code_copy, f"{variant}: a code change would reinstall every dependency"
        copies_before = [i.words() for i in ordered[:dependency_install] if i.keyword == "COPY"]
        assert copies_before == [["deploy/requirements.lock", "./"]], "only the lock may feed the dependency layer"


def test_image_installs_exactly_the_locked_runtime_dependencies(by_stage: dict[str, list[Instruction]]) -> None:
    """Every runtime dependency of pyproject.toml but torch is pinned with hashes in the lock the image uses."""
    run = next(i.args for i in by_stage["deps"] if "pip install" in i.args)
    assert "--require-hashes" in run and "-r requirements.lock" in run
    lock = (REPO / "deploy" / "requirements.lock").read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9_.-]+==\S+)(.*)$", lock, flags=re.M)
    assert pins and all(rest == " \\" for _, rest in pins), "every pin carries its hashes"
    pinned = {_name(pin) for pin, _ in pins}
    wanted = {_name(dep) for dep in PYPROJECT["project"]["dependencies"]}
    assert "torch" not in pinned, "each variant installs its own torch build before the lock"
    assert wanted - {"torch"} <= pinned, f"not locked: {sorted(wanted - {'torch'} - pinned)}"
    dev = {_name(dep) for dep in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert not ({"pytest", "mypy", "ruff"} & dev & pinned), "dev tools stay out of the image"


def test_runtime_runs_as_a_non_root_user(by_stage: dict[str, list[Instruction]]) -> None:
    runtime = by_stage["runtime"]
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot check it"
    last_user = max(n for n, i in enumerate(runtime) if i.keyword == "USER")
    assert all(i.keyword not in ("RUN", "COPY", "ADD") for i in runtime[last_user:]), "nothing after USER as root"


def test_runtime_entrypoint_is_the_triage_cli(by_stage: dict[str, list[Instruction]]) -> None:
    runtime = by_stage["runtime"]
    entrypoint = next(i for i in runtime if i.keyword == "ENTRYPOINT").exec_form()
    command = next(i for i in runtime if i.keyword == "CMD").exec_form()
    assert "triage" in PYPROJECT["project"]["scripts"]
    assert entrypoint == ["triage"]
    assert command == ["worker"]
    exposed = [i.args for i in runtime if i.keyword == "EXPOSE"]
    worker_env = load_compose({"REDIS_PASSWORD": "x"})["services"]["worker"]["environment"]
    assert exposed == [str(worker_env["TRIAGE_WEB_PORT"])]


def test_dockerignore_admits_only_the_package_sources() -> None:
    texts = [path.read_text(encoding="utf-8") for path in DOCKERIGNORES]
    assert texts[0] == texts[1], "deploy/Dockerfile.dockerignore and .dockerignore must stay identical"
    patterns = [line.strip() for line in texts[0].splitlines() if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list: exclude everything, then admit what the image needs"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= admitted, "every package the wheel includes must reach the build"
    assert "pyproject.toml" in admitted
    assert not admitted & {".venv", "models", "data", "results", ".git", "tests", ".env"}
    for path in admitted - {"README.md"}:
        assert (REPO / path).exists(), f".dockerignore admits {path}, which does not exist"
