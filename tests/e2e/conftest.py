"""The world of the end-to-end tests: the sample repository behind a GitHub simulator, the
settings every process shares, and the app under gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sample import SampleRepository, build_sample_repository
from sandbox.factory import docker_available
from tests.e2e.loop import INSTALLATION, REPO, SECRET
from tests.github_sim import GitHubSimulator
from tests.services import free_port, wait_for_port


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[GitHubSimulator, SampleRepository]]:
    sample = build_sample_repository(tmp_path / "origin" / "textkit")
    sim = GitHubSimulator().start()
    sim.add_installation(INSTALLATION, "textkit-dev")
    sim.add_repo("textkit-dev", "textkit", sample.path, INSTALLATION)
    for number, (title, body) in sample.issues.items():
        sim.add_issue(REPO, number, title, body)
    yield sim, sample
    sim.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'davinci.db'}"


@pytest.fixture
def env(world: tuple[GitHubSimulator, SampleRepository], redis_url: str, database_url: str,
        tmp_path: Path) -> dict[str, str]:
    sim, _ = world
    backend = "docker" if os.environ.get("CI") == "true" or docker_available() else "local"
    return {**os.environ, "GITHUB_APP_ID": str(sim.app_id),
            "GITHUB_PRIVATE_KEY": sim.private_key_pem, "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": sim.url, "REDIS_URL": redis_url,
            "DAVINCI_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
            "DAVINCI_SANDBOX": backend, "DAVINCI_LOG_FORMAT": "json"}


@pytest.fixture
def web(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", "bot.app:create_app()"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
