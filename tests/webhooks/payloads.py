"""Webhook payloads in GitHub's documented shapes, built per test."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

REPO = {"id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "textkit",
        "full_name": "textkit-dev/textkit", "private": False,
        "owner": {"login": "textkit-dev", "id": 9919, "type": "Organization"},
        "default_branch": "main", "clone_url": "https://github.com/textkit-dev/textkit.git"}
INSTALLATION = {"id": 2311213, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMjMxMTIxMw=="}
SENDER = {"login": "alice", "id": 583231, "type": "User"}


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(event: str, body: bytes, secret: str | None, delivery: str | None = None,
            ) -> dict[str, str]:
    result = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
              "X-GitHub-Hook-ID": "292430182", "Content-Type": "application/json",
              "User-Agent": "GitHub-Hookshot/044aadd"}
    if secret is not None:
        result["X-Hub-Signature-256"] = sign(body, secret)
    return result


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def ping() -> dict[str, Any]:
    return {"zen": "Keep it logically awesome.", "hook_id": 292430182,
            "hook": {"type": "App", "id": 292430182, "app_id": 4242,
                     "events": ["pull_request", "issue_comment"]}}


def pull_request(action: str = "closed", merged: bool = True, number: int = 4,
                 body: str | None = "Shortened slugs could end with a dash.") -> dict[str, Any]:
    return {
        "action": action, "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/textkit-dev/textkit/pulls/{number}",
            "id": 279147437, "number": number, "state": "closed" if action == "closed" else "open",
            "title": "Fix trailing dash in shortened slugs", "body": body,
            "user": SENDER, "merged": merged,
            "merged_at": "2026-03-07T10:00:00Z" if merged else None,
            "merge_commit_sha": "9bf68465296272ca113e2a347ca5dd3e1cfaff99" if merged else None,
            "labels": [{"id": 1, "name": "bug"}],
            "base": {"ref": "main", "sha": "4a221950e92b271524dbd7f9879be8fb3d137839",
                     "repo": REPO},
            "head": {"ref": "dave/slug-dash", "sha": "0335df1aa", "repo": REPO},
        },
        "repository": REPO, "installation": INSTALLATION, "sender": SENDER,
    }


def installation(action: str = "created", repositories: int = 2) -> dict[str, Any]:
    repos = [{"id": 1296269 + i, "node_id": f"R{i}", "name": f"repo{i}",
              "full_name": f"textkit-dev/repo{i}", "private": i % 2 == 1}
             for i in range(repositories)]
    payload: dict[str, Any] = {
        "action": action,
        "installation": {**INSTALLATION, "account": {"login": "textkit-dev", "id": 9919,
                                                     "type": "Organization"},
                         "repository_selection": "selected", "app_id": 4242,
                         "permissions": {"contents": "read", "pull_requests": "write"},
                         "events": ["pull_request", "issue_comment"]},
        "sender": SENDER,
    }
    if action == "created":
        payload["repositories"] = repos
    return payload


def installation_repositories(action: str, ids: range) -> dict[str, Any]:
    repos = [{"id": 5000 + i, "node_id": f"N{i}", "name": f"more{i}",
              "full_name": f"textkit-dev/more{i}", "private": False} for i in ids]
    return {"action": action, "installation": {**INSTALLATION,
                                               "account": {"login": "textkit-dev", "id": 9919,
                                                           "type": "Organization"}},
            "repository_selection": "selected",
            "repositories_added": repos if action == "added" else [],
            "repositories_removed": repos if action == "removed" else [],
            "sender": SENDER}


def issue_comment(body: str = "/davinci rollout", association: str = "OWNER",
                  sender_type: str = "User", on_pull_request: bool = True,
                  login: str = "alice", comment_id: int = 1362934389) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 4, "title": "Fix trailing dash", "state": "closed",
                             "user": SENDER}
    if on_pull_request:
        issue["pull_request"] = {
            "url": "https://api.github.com/repos/textkit-dev/textkit/pulls/4",
            "merged_at": "2026-03-07T10:00:00Z"}
    user = {"login": login, "id": 1, "type": sender_type}
    return {"action": "created", "issue": issue,
            "comment": {"id": comment_id, "body": body, "user": user,
                        "author_association": association},
            "repository": REPO, "installation": INSTALLATION, "sender": user}
