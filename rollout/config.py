"""Everything a rollout can be tuned by, in one typed value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RolloutConfig:
    max_attempts: int = 3
    """Submissions per stage before the stage counts as failed."""
    max_steps: int = 200
    """Assistant turns over the whole rollout."""
    max_tokens: int = 400_000
    """Completion tokens (as the endpoint counts them) the model may write over the whole
    rollout. Prompts are not counted here: the window bounds them (rollout.context)."""
    max_format_errors: int = 5
    """Turns in a row that run no tool (empty, no call, cut off, arguments not JSON) before
    the stage ends as failed."""
    observation_limit: int = 8_000
    """Characters of a tool observation shown to the agent; the rest is replaced by a marker."""
    feedback_limit: int = 4_000
    """Characters of test output sent back after a failed attempt."""
    gold_on_failure: bool = False
    """After a stage fails for good, apply its gold patch and go on (else the rollout ends)."""
    threshold: float = 0.8
    """Chain score at or above which a trajectory is accepted."""
    validation_runs: int = 2
    """Runs of the tests before and after each gold patch; outcomes that change between
    runs mark a test as flaky, and flaky tests are not evidence."""
    test_timeout: float = 300.0
    """Seconds one run of a stage's tests may take."""
    test_runner: str = "python3 -m pytest"
    """The repository's test command (`test` in `.github/davinci.yml`); takes pytest's
    arguments, since outcomes are read from its JUnit XML report."""
    command_timeout: float = 120.0
    """Seconds one `bash` tool call may take."""
    instruction_attempts: int = 3
    """LLM-written instructions tried before falling back to the template."""
    leak_threshold: float = 0.2
    """Largest share of distinctive added code lines an instruction may contain."""
