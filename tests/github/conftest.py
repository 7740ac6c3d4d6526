"""Fixtures for the GitHub area: the simulator and real git repositories behind it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.db import Database
from bot.runtime import Runtime
from bot.settings import Settings
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo

INSTALLATION_ID = 777
WEBHOOK_SECRET = "github-area-secret"


@pytest.fixture
def github_sim() -> Iterator[GitHubSimulator]:
    sim = GitHubSimulator().start()
    yield sim
    sim.stop()


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "origin" / "widgets")
    repo.commit("Initial commit", {"README.md": "# widgets\n", "src/app.py": "VALUE = 1\n"})
    return repo


@pytest.fixture
def settings(github_sim: GitHubSimulator, redis_url: str, tmp_path: Path) -> Settings:
    """The App's settings pointing at the simulator."""
    return Settings(github_app_id=str(github_sim.app_id),
                    github_private_key=github_sim.private_key_pem,
                    webhook_secrets=(WEBHOOK_SECRET,), github_api_url=github_sim.url,
                    github_write_pause=0, redis_url=redis_url, data_dir=tmp_path / "data")


@pytest.fixture
def runtime(settings: Settings, database: Database) -> Iterator[Runtime]:
    """A runtime over the simulator, on SQLite and on PostgreSQL."""
    rt = Runtime(settings, _db=database)
    yield rt
    rt.close()
