"""`/davinci <command>` from a maintainer, as an rq job. Every command is idempotent: a
redelivered comment changes nothing twice and is answered once."""

from __future__ import annotations

from typing import Any

import structlog
from github import Github

from bot.github import installation_client
from bot.jobs.rollouts import enqueue_rollout
from bot.jobs.status import bot_login, chain_for, refresh
from bot.pr_commands import HELP, reply_marker, unknown_reply
from bot.runtime import Runtime
from bot.settings import Settings
from chains.mining import to_chain
from chains.store import PullRequestRow

log = structlog.get_logger(__name__)


def run_pr_command(installation_id: int, repository: str, number: int, command: str,
                   comment_id: int, author: str) -> dict[str, Any]:
    runtime = Runtime(Settings.from_env())
    try:
        client = installation_client(runtime.settings, runtime.redis, installation_id)
        return execute(runtime, client, repository, number, command, comment_id, author)
    finally:
        runtime.close()


def execute(runtime: Runtime, client: Github, repository: str, number: int, command: str,
            comment_id: int, author: str) -> dict[str, Any]:
    log.info("command.received", repo=repository, pr=number, command=command, author=author)
    if command == "status":
        return {"command": command, "status": refresh(runtime, client, repository,
                                                      number).action}
    if command == "ignore":
        with runtime.db.session() as session:
            row = session.get(PullRequestRow, (repository, number))
            if row is not None:
                row.ignored = True
        if row is None:
            return _reply(runtime, client, repository, number, comment_id,
                          "This pull request has not been mined yet; nothing to ignore.")
        return {"command": command, "status": refresh(runtime, client, repository,
                                                      number).action}
    if command == "rollout":
        with runtime.db.session() as session:
            found = chain_for(session, repository, number)
            chain = to_chain(found) if found is not None else None
        if chain is None or not chain.eligible:
            return _reply(runtime, client, repository, number, comment_id,
                          "This pull request is not in a chain that is eligible for a rollout "
                          "yet (see the status comment).")
        job_id = f"rollout-{chain.id}-len{len(chain.prs)}-cmd{comment_id}"
        enqueued = enqueue_rollout(runtime, chain, job_id,
                                   f"/davinci rollout by {author}") is not None
        return {"command": command, "job": job_id, "enqueued": enqueued}
    text = HELP if command == "help" else unknown_reply(command)
    return _reply(runtime, client, repository, number, comment_id, text)


def _reply(runtime: Runtime, client: Github, repository: str, number: int, comment_id: int,
           text: str) -> dict[str, Any]:
    """Answer once per command comment: a reply carrying its marker is never posted twice."""
    marker = reply_marker(comment_id)
    issue = client.get_repo(repository).get_issue(number)
    login = bot_login(runtime)
    lock = runtime.redis.lock(f"davinci:lock:reply:{comment_id}", timeout=60,
                              blocking_timeout=60)
    with lock:
        for comment in issue.get_comments():
            if comment.user.login == login and marker in (comment.body or ""):
                return {"replied": False, "comment": comment.id}
        created = issue.create_comment(f"{text}\n\n{marker}")
    return {"replied": True, "comment": created.id}
