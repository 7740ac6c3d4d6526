"""`issue_comment`: `/davinci <command>` from a maintainer on a pull request becomes a job.

Ignored without a reply: comments on plain issues, edits and deletions, comments from anyone
whose association is not OWNER, MEMBER or COLLABORATOR, and comments by any bot (the App's own
included, so it never answers itself).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.pr_commands import is_trusted, parse
from handlers import MINING_QUEUE, Event, JobSpec, Outcome, Router, job_id, require


def register(router: Router) -> None:
    @router.shape("issue_comment")
    def shape(payload: dict[str, Any]) -> None:
        require(payload, "action", str)
        require(payload, "issue.number", int)
        require(payload, "comment.id", int)
        require(payload, "comment.user.login", str)
        require(payload, "repository.full_name", str)
        body = payload["comment"].get("body")
        if body is not None and not isinstance(body, str):
            require(payload, "comment.body", str)

    @router.register("issue_comment", "created")
    def on_comment(event: Event, session: Session) -> Outcome:
        payload = event.payload
        if not payload["issue"].get("pull_request"):
            return Outcome(note="comment on an issue, not a pull request")
        sender = payload.get("sender") or payload["comment"]["user"]
        command = parse(payload["comment"].get("body"))
        if command is None:
            return Outcome(note="no /davinci command")
        if not is_trusted(payload["comment"].get("author_association"), sender.get("type")):
            return Outcome(note="command from an author who may not give commands")
        installation = payload.get("installation") or {}
        if not isinstance(installation.get("id"), int):
            return Outcome(note="no installation in the payload")
        full_name = payload["repository"]["full_name"]
        number = payload["issue"]["number"]
        comment_id = payload["comment"]["id"]
        author = payload["comment"]["user"]["login"]
        return Outcome(jobs=[JobSpec(
            MINING_QUEUE, "bot.jobs.commands.run_pr_command",
            (installation["id"], full_name, number, command.name, comment_id, author),
            job_id("command", full_name, number, comment_id),
            f"/davinci {command.name} on {full_name}#{number}")])
