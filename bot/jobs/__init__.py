"""rq jobs: thin functions that open resources and call the domain.

Importing this package registers the status comment as a follow-up of mining.
"""

from __future__ import annotations

from github import Github

from bot.jobs import mining
from bot.jobs.status import refresh, refresh_chain
from bot.runtime import Runtime


def _status_after_mining(runtime: Runtime, client: Github, outcome: mining.MiningOutcome) -> None:
    if outcome.skipped:
        return
    problem = outcome.config_problem
    refresh(runtime, client, outcome.repository, outcome.number, outcome.config,
            config_problem=problem)
    chain = outcome.chain
    if chain is not None and not outcome.already_mined and len(chain.prs) > 1:
        # The chain grew: its earlier PRs' comments show the longer chain (and get one now
        # that they are in a chain).
        earlier = [n for n in chain.prs if n != outcome.number]
        refresh_chain(runtime, client, outcome.repository, earlier, outcome.config, problem)


if _status_after_mining not in mining.AFTER_MINING:
    mining.AFTER_MINING.append(_status_after_mining)
