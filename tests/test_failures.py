"""The table of failure classes: what is worth retrying and what is not."""

from __future__ import annotations

import pytest
from github import GithubException
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.exceptions import AbandonedJobError
from sqlalchemy.exc import OperationalError

from bot.failures import DETERMINISTIC, INFRASTRUCTURE, classify, describe
from bot.jobs.mining import MiningBusy
from bot.pipeline import PipelineError
from chains.mirror import MirrorError
from rollout.llm import LLMRefused, LLMUnavailable
from rollout.task import TaskError
from sandbox.base import PatchConflict, SandboxUnavailable


@pytest.mark.parametrize(("exc", "kind"), [
    (LLMUnavailable("502 after 3 tries"), INFRASTRUCTURE),
    (SandboxUnavailable("no engine"), INFRASTRUCTURE),
    (RedisConnectionError("refused"), INFRASTRUCTURE),
    (OperationalError("SELECT 1", {}, Exception("server closed the connection")),
     INFRASTRUCTURE),
    (GithubException(502, {"message": "Bad Gateway"}, None), INFRASTRUCTURE),
    (GithubException(403, {"message": "secondary rate limit"}, None), INFRASTRUCTURE),
    (MirrorError("git fetch failed"), INFRASTRUCTURE),
    (MiningBusy("busy for 600s"), INFRASTRUCTURE),
    (AbandonedJobError(), INFRASTRUCTURE),
    (GithubException(404, {"message": "Not Found"}, None), DETERMINISTIC),
    (LLMRefused("bad request", 400), DETERMINISTIC),
    (PipelineError("the llm policy needs LLM_BASE_URL and LLM_MODEL"), DETERMINISTIC),
    (TaskError("no stage"), DETERMINISTIC),
    (PatchConflict("does not apply"), DETERMINISTIC),
    (KeyError("a bug"), DETERMINISTIC),
])
def test_each_failure_has_its_class(exc: BaseException, kind: str) -> None:
    assert classify(exc)[0] == kind


def test_the_reason_is_one_line_that_names_the_failure() -> None:
    text = describe(SandboxUnavailable("no Docker engine answers at\nunix:///var/run/docker.sock"))
    assert "\n" not in text
    assert text.startswith("no Docker engine answered (SandboxUnavailable: no Docker engine")
    assert len(describe(PipelineError("x" * 1000))) <= 300
