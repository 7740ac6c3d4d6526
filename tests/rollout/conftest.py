"""Rollout fixtures: the chain repository, a sandbox on it, and the LLM simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from rollout import Task, TaskValidation, build_task, validate_task
from sandbox.base import Sandbox
from tests.llm_sim import LLMSim
from tests.rollout.fixture_repo import ChainRepo, make_chain_repo
from tests.rollout.sandboxes import open_sandbox


@pytest.fixture(scope="session")
def chain_repo(tmp_path_factory: pytest.TempPathFactory) -> ChainRepo:
    """Read-only for tests: sandboxes work on their own copies."""
    return make_chain_repo(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="session")
def task(chain_repo: ChainRepo) -> Task:
    return build_task(chain_repo.path, "chain-stats", chain_repo.prs, chain_repo.kinds)


@pytest.fixture(scope="session")
def validation(chain_repo: ChainRepo, task: Task) -> TaskValidation:
    with open_sandbox(chain_repo.path, task.base_commit) as box:
        return validate_task(task, box)


@pytest.fixture(scope="session")
def first_pr_task(chain_repo: ChainRepo) -> Task:
    return build_task(chain_repo.path, "chain-one", chain_repo.prs[:1])


@pytest.fixture(scope="session")
def first_pr_validation(chain_repo: ChainRepo, first_pr_task: Task) -> TaskValidation:
    with open_sandbox(chain_repo.path, first_pr_task.base_commit) as box:
        return validate_task(first_pr_task, box)


@pytest.fixture(name="open_sandbox")
def sandbox_factory(chain_repo: ChainRepo) -> Iterator[Callable[[str], Sandbox]]:
    """Opens sandboxes on the chain repository; all are closed after the test."""
    opened: list[Sandbox] = []

    def factory(commit: str) -> Sandbox:
        box = open_sandbox(chain_repo.path, commit)
        opened.append(box)
        return box

    yield factory
    for box in opened:
        box.close()


@pytest.fixture
def llm_sim() -> Iterator[LLMSim]:
    sim = LLMSim().start()
    yield sim
    sim.stop()
