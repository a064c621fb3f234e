"""deploy/compose-smoke.sh parses, and refuses loudly (never passes) where no Docker engine answers."""

from __future__ import annotations

import os
import subprocess

from tests.deploy.stack import REPO

SCRIPT = REPO / "deploy" / "compose-smoke.sh"


def test_script_is_executable_bash() -> None:
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_a_docker_engine_it_fails_with_what_to_do(tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock"}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "compose-smoke:" in result.stderr and "docker" in result.stderr.lower()
    assert "lost = 0" not in result.stdout
