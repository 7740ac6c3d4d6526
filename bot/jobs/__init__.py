"""rq jobs: thin functions that open resources and call the domain.

Importing this package registers the status comment as a follow-up of mining.
"""

from __future__ import annotations

from github import Github

from bot.jobs import mining
from bot.jobs.status import refresh
from bot.runtime import Runtime


def _status_after_mining(runtime: Runtime, client: Github, outcome: mining.MiningOutcome) -> None:
    if outcome.skipped or not outcome.comment:
        return
    refresh(runtime, client, outcome.repository, outcome.number,
            config_problem=outcome.config_problem)


if _status_after_mining not in mining.AFTER_MINING:
    mining.AFTER_MINING.append(_status_after_mining)
