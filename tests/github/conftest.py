"""Fixtures for the GitHub area: the simulator and real git repositories behind it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo

INSTALLATION_ID = 777


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
