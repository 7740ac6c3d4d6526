"""A local GitHub for tests: real HTTP on a loopback port, GitHub's REST and GraphQL shapes.

It serves the subset of the API the bot uses from real git repositories that the tests create,
authenticates like GitHub does (App JWTs signed RS256, installation tokens), paginates with
`Link` headers, records every request and everything the bot writes, and can be told to answer
with rate-limit responses or server errors. PyGithub talks to it through `base_url` exactly as
it talks to api.github.com.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

DOCS = "https://docs.github.com/rest"
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before "
                     "you try again. If you reach out to GitHub Support for help, please include "
                     "the request ID 0000:0000:0000000:0000000:00000000.")
TOKEN_TTL = timedelta(hours=1)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id_for(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class ApiError(Exception):
    """Answered to the client as GitHub answers errors: status plus a JSON message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": DOCS, **(extra or {})}
        self.headers = headers or {}


# --------------------------------------------------------------------------- world


@dataclass
class SimIssue:
    number: int
    title: str
    body: str | None = None
    author: str = "octocat"
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    created_at: datetime = field(default_factory=lambda: datetime(2023, 11, 1, tzinfo=UTC))


@dataclass
class SimPull:
    number: int
    title: str
    body: str | None
    author: str
    labels: list[str]
    merge_commit_sha: str
    base_sha: str
    head_sha: str
    commit_shas: list[str]
    merged_at: datetime
    closing_issues: list[int]
    head_ref: str
    base_ref: str
    merged: bool = True

    @property
    def updated_at(self) -> datetime:
        return self.merged_at + timedelta(seconds=5)


@dataclass
class SimComment:
    id: int
    repository: str
    issue_number: int
    body: str
    user: str
    user_type: str
    created_at: datetime
    updated_at: datetime


@dataclass
class SimCheckRun:
    """A check run on a commit, as the App created it (or another App, for tests)."""

    id: int
    repository: str
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    output: dict[str, Any]
    app_id: int
    started_at: datetime
    completed_at: datetime | None
    details_url: str | None = None
    external_id: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Every body the App sent for this run (the create, then each update), in order."""


@dataclass
class SimRepo:
    owner: str
    name: str
    git_path: Path
    installation_id: int
    default_branch: str = "main"
    private: bool = False
    clone_url: str = ""
    pulls: dict[int, SimPull] = field(default_factory=dict)
    issues: dict[int, SimIssue] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def id(self) -> int:
        return _id_for(self.full_name)

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", "-C", str(self.git_path), *args], capture_output=True,
                              check=check)


@dataclass
class Installation:
    id: int
    account: str
    account_type: str = "Organization"
    suspended: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    at: float


@dataclass
class Fault:
    """An injected answer for requests matching `method` and the `path` regex, `times` times."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int = 1
    after: int = 0
    """Let this many matching requests through before answering with the fault."""

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None


# --------------------------------------------------------------------------- simulator


@dataclass
class HookDelivery:
    """One attempt to deliver one event to the App's webhook URL (`hook-delivery-item`)."""

    id: int
    guid: str
    event: str
    action: str | None
    payload: dict[str, Any]
    status_code: int
    """0 when no answer came (timeout, refused)."""
    delivered_at: datetime
    redelivery: bool = False

    def item(self) -> dict[str, Any]:
        status = "OK" if 200 <= self.status_code < 300 else (
            f"Invalid HTTP Response: {self.status_code}" if self.status_code else "timed out")
        installation = self.payload.get("installation") or {}
        repository = self.payload.get("repository") or {}
        return {"id": self.id, "guid": self.guid, "delivered_at": iso(self.delivered_at),
                "redelivery": self.redelivery, "duration": 0.05, "status": status,
                "status_code": self.status_code, "event": self.event, "action": self.action,
                "installation_id": installation.get("id"),
                "repository_id": repository.get("id"), "throttled_at": None}


class GitHubSimulator:
    """The simulated GitHub. Start it, add installations, repositories, issues and PRs."""

    def __init__(self, app_id: int = 4242, slug: str = "davinci-agency",
                 client_id: str = "Iv1.0123456789abcdef") -> None:
        self.app_id = app_id
        self.slug = slug
        self.client_id = client_id
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.installations: dict[int, Installation] = {}
        self.repos: dict[str, SimRepo] = {}
        self.comments: dict[int, SimComment] = {}
        self.check_runs: dict[int, SimCheckRun] = {}
        self.tokens: dict[str, tuple[int, datetime]] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.rate_limit_remaining = 5000
        self.hook_deliveries: list[HookDelivery] = []
        self.webhook_url: str | None = None
        """Where redeliveries are sent (the App's webhook URL), signed with webhook_secret."""
        self.webhook_secret = ""
        self._next_comment_id = 1_000_000
        self._next_check_run_id = 5_000_000
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> GitHubSimulator:
        handler = type("Handler", (_Handler,), {"sim": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="github-sim")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the simulator is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def private_key_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode()

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    # -- building the world

    def add_installation(self, installation_id: int, account: str,
                         account_type: str = "Organization") -> Installation:
        installation = Installation(installation_id, account, account_type)
        self.installations[installation_id] = installation
        return installation

    def add_repo(self, owner: str, name: str, git_path: Path, installation_id: int,
                 default_branch: str = "main", clone_url: str | None = None) -> SimRepo:
        if installation_id not in self.installations:
            self.add_installation(installation_id, owner)
        repo = SimRepo(owner, name, Path(git_path), installation_id, default_branch,
                       clone_url=clone_url or str(git_path))
        self.repos[repo.full_name.lower()] = repo
        return repo

    def add_issue(self, repository: str, number: int, title: str, body: str | None = None,
                  **kwargs: Any) -> SimIssue:
        issue = SimIssue(number, title, body, **kwargs)
        self.repo(repository).issues[number] = issue
        return issue

    def add_pull(self, repository: str, number: int, merge_commit: str, title: str,
                 body: str | None = None, author: str = "octocat",
                 labels: tuple[str, ...] = (), closes: tuple[int, ...] = (),
                 head_ref: str | None = None) -> SimPull:
        """A merged PR whose changes are `merge_commit` on the default branch.

        A merge commit (two parents) gives base = first parent, head = second parent and the
        commits between them; a squash commit (one parent) is its own head and only commit.
        """
        repo = self.repo(repository)
        parents = repo.git("rev-list", "--parents", "-n", "1", merge_commit).stdout.decode().split()
        sha, parent_shas = parents[0], parents[1:]
        base = parent_shas[0]
        head = parent_shas[1] if len(parent_shas) > 1 else sha
        shas = repo.git("rev-list", "--reverse", f"{base}..{head}").stdout.decode().split()
        stamp = int(repo.git("show", "-s", "--format=%ct", sha).stdout.decode().strip())
        pull = SimPull(number, title, body, author, list(labels), sha, base, head, shas,
                       datetime.fromtimestamp(stamp, UTC), list(closes),
                       head_ref or f"pr-{number}", repo.default_branch)
        repo.pulls[number] = pull
        return pull

    def repo(self, full_name: str) -> SimRepo:
        try:
            return self.repos[full_name.lower()]
        except KeyError:
            raise ApiError(404, "Not Found") from None

    # -- faults

    def inject(self, method: str, path: str, status: int, *, times: int = 1, after: int = 0,
               headers: dict[str, str] | None = None,
               body: dict[str, Any] | None = None) -> Fault:
        fault = Fault(method, path, status, headers or {},
                      body or {"message": "Server Error"}, times, after)
        with self._lock:
            self.faults.append(fault)
        return fault

    def secondary_rate_limit(self, method: str, path: str, retry_after: int = 1,
                             times: int = 1, after: int = 0) -> Fault:
        return self.inject(method, path, 403, times=times, after=after,
                           headers={"Retry-After": str(retry_after)},
                           body={"message": SECONDARY_MESSAGE, "documentation_url": DOCS})

    def primary_rate_limit(self, method: str, path: str, reset_in: int = 1,
                           times: int = 1, status: int = 403, after: int = 0) -> Fault:
        reset = int(time.time()) + reset_in
        return self.inject(method, path, status, times=times, after=after, headers={
            "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000", "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core"},
            body={"message": "API rate limit exceeded for installation ID 1.",
                  "documentation_url": DOCS})

    def too_many_requests(self, method: str, path: str, retry_after: int = 1,
                          times: int = 1, after: int = 0) -> Fault:
        return self.inject(method, path, 429, times=times, after=after,
                           headers={"Retry-After": str(retry_after)},
                           body={"message": SECONDARY_MESSAGE, "documentation_url": DOCS})

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    # -- webhook deliveries (the App's "Advanced" tab)

    def add_hook_delivery(self, guid: str, event: str, payload: dict[str, Any],
                          status_code: int, delivered_at: datetime | None = None,
                          redelivery: bool = False) -> HookDelivery:
        """Record that GitHub tried to deliver an event and what our endpoint answered."""
        with self._lock:
            delivery = HookDelivery(10_000_000 + len(self.hook_deliveries), guid, event,
                                    payload.get("action"), payload, status_code,
                                    delivered_at or datetime.now(UTC), redelivery)
            self.hook_deliveries.append(delivery)
            return delivery

    def redeliver(self, delivery_id: int) -> HookDelivery:
        """Deliver the event again, signed, to `webhook_url`, as GitHub does on request."""
        original = next((d for d in self.hook_deliveries if d.id == delivery_id), None)
        if original is None:
            raise ApiError(404, "Not Found")
        body = json.dumps(original.payload).encode()
        signature = "sha256=" + hmac.new(self.webhook_secret.encode(), body,
                                         hashlib.sha256).hexdigest()
        status = 0
        if self.webhook_url is not None:
            request = urllib.request.Request(self.webhook_url, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-GitHub-Event": original.event,
                "X-GitHub-Delivery": original.guid, "X-Hub-Signature-256": signature,
                "User-Agent": "GitHub-Hookshot/sim"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
        return self.add_hook_delivery(original.guid, original.event, original.payload, status,
                                      redelivery=True)

    # -- what happened

    def requests_to(self, method: str, pattern: str) -> list[RecordedRequest]:
        return [r for r in self.requests
                if r.method == method and re.search(pattern, r.path) is not None]

    def comments_on(self, repository: str, number: int) -> list[SimComment]:
        return sorted((c for c in self.comments.values()
                       if c.repository.lower() == repository.lower()
                       and c.issue_number == number), key=lambda c: c.id)

    def check_runs_on(self, repository: str, sha: str) -> list[SimCheckRun]:
        return sorted((r for r in self.check_runs.values()
                       if r.repository.lower() == repository.lower() and r.head_sha == sha),
                      key=lambda r: r.id)

    def add_check_run(self, repository: str, head_sha: str, name: str, app_id: int,
                      conclusion: str = "success") -> SimCheckRun:
        """A completed check run made by some App (``app_id``), e.g. another App's."""
        now = datetime.now(UTC)
        with self._lock:
            self._next_check_run_id += 1
            run = SimCheckRun(self._next_check_run_id, self.repo(repository).full_name,
                              head_sha, name, "completed", conclusion,
                              {"title": name, "summary": ""}, app_id, now, now)
            self.check_runs[run.id] = run
        return run

    # -- authentication

    def verify_jwt(self, token: str) -> None:
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError:
            raise ApiError(401, "A JSON web token could not be decoded") from None
        if header.get("alg") != "RS256":
            raise ApiError(401, "A JSON web token could not be decoded")
        try:
            self.private_key.public_key().verify(
                signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                hashes.SHA256())
        except InvalidSignature:
            raise ApiError(401, "A JSON web token could not be decoded") from None
        now = time.time()
        if str(claims.get("iss")) not in (str(self.app_id), self.client_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp <= now:
            raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value "
                                "representing the future time at which the assertion expires")
        if not isinstance(iat, int | float) or iat > now + 60:
            raise ApiError(401, "'Issued at' claim ('iat') must be an Integer representing "
                                "the time that the assertion was issued")
        if exp - iat > 660:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")

    def installation_for_token(self, token: str) -> int:
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= datetime.now(UTC):
            raise ApiError(401, "Bad credentials")
        return entry[0]

    def mint_token(self, installation_id: int) -> tuple[str, datetime]:
        token = "ghs_" + secrets.token_hex(18)
        expires = datetime.now(UTC).replace(microsecond=0) + TOKEN_TTL
        self.tokens[token] = (installation_id, expires)
        return token, expires

    # -- resource shapes (as documented for the REST API)

    def user(self, login: str, kind: str = "User") -> dict[str, Any]:
        base = self.url
        return {"login": login, "id": _id_for(login), "node_id": f"U_{_id_for(login)}",
                "avatar_url": f"{base}/avatars/{login}", "gravatar_id": "",
                "url": f"{base}/users/{login}", "html_url": f"{base}/{login}",
                "type": kind, "site_admin": False}

    def app_json(self) -> dict[str, Any]:
        now = iso(datetime(2023, 1, 1, tzinfo=UTC))
        return {"id": self.app_id, "slug": self.slug, "node_id": f"A_{self.app_id}",
                "client_id": self.client_id, "owner": self.user("octo-org", "Organization"),
                "name": "daVinci Agency", "description": "", "external_url": self.url,
                "html_url": f"{self.url}/apps/{self.slug}", "created_at": now,
                "updated_at": now, "permissions": {"contents": "read", "issues": "write",
                                                   "metadata": "read",
                                                   "pull_requests": "write"},
                "events": ["installation", "issue_comment", "pull_request"],
                "installations_count": len(self.installations)}

    def installation_json(self, installation: Installation) -> dict[str, Any]:
        now = iso(datetime(2023, 1, 1, tzinfo=UTC))
        base = self.url
        return {"id": installation.id,
                "account": self.user(installation.account, installation.account_type),
                "access_tokens_url": f"{base}/app/installations/{installation.id}/access_tokens",
                "repositories_url": f"{base}/installation/repositories",
                "html_url": f"{base}/settings/installations/{installation.id}",
                "app_id": self.app_id, "app_slug": self.slug, "target_id":
                _id_for(installation.account), "target_type": installation.account_type,
                "permissions": self.app_json()["permissions"], "events":
                self.app_json()["events"], "repository_selection": "selected",
                "created_at": now, "updated_at": now, "single_file_name": None,
                "suspended_at": None, "suspended_by": None}

    def repo_json(self, repo: SimRepo) -> dict[str, Any]:
        base = f"{self.url}/repos/{repo.full_name}"
        now = iso(datetime(2023, 1, 1, tzinfo=UTC))
        return {"id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name,
                "full_name": repo.full_name, "private": repo.private,
                "owner": self.user(repo.owner, "Organization"),
                "html_url": f"{self.url}/{repo.full_name}", "description": None, "fork": False,
                "url": base, "pulls_url": f"{base}/pulls{{/number}}",
                "issues_url": f"{base}/issues{{/number}}",
                "contents_url": f"{base}/contents/{{+path}}",
                "git_url": f"git://127.0.0.1/{repo.full_name}.git",
                "ssh_url": f"git@127.0.0.1:{repo.full_name}.git", "clone_url": repo.clone_url,
                "default_branch": repo.default_branch, "visibility":
                "private" if repo.private else "public", "archived": False, "disabled": False,
                "created_at": now, "updated_at": now, "pushed_at": now,
                "permissions": {"admin": False, "maintain": False, "push": False,
                                "triage": False, "pull": True}}

    def issue_json(self, repo: SimRepo, number: int) -> dict[str, Any]:
        base = f"{self.url}/repos/{repo.full_name}"
        pull = repo.pulls.get(number)
        if pull is not None:
            title, body, author, labels = pull.title, pull.body, pull.author, pull.labels
            state, created = "closed", pull.merged_at - timedelta(hours=1)
            closed: datetime | None = pull.merged_at
        elif number in repo.issues:
            issue = repo.issues[number]
            title, body, author, labels = issue.title, issue.body, issue.author, issue.labels
            state, created = issue.state, issue.created_at
            closed = issue.created_at + timedelta(days=1) if issue.state == "closed" else None
        else:
            raise ApiError(404, "Not Found")
        data: dict[str, Any] = {
            "id": _id_for(f"{repo.full_name}#{number}"), "node_id": f"I_{repo.id}_{number}",
            "url": f"{base}/issues/{number}", "repository_url": base,
            "comments_url": f"{base}/issues/{number}/comments",
            "html_url": f"{self.url}/{repo.full_name}/"
                        f"{'pull' if pull else 'issues'}/{number}",
            "number": number, "state": state, "state_reason": "completed" if closed else None,
            "title": title, "body": body, "user": self.user(author),
            "labels": [self.label_json(repo, name) for name in labels], "assignee": None,
            "assignees": [], "milestone": None, "locked": False,
            "comments": len(self.comments_on(repo.full_name, number)),
            "created_at": iso(created), "updated_at": iso(closed or created),
            "closed_at": iso(closed) if closed else None, "author_association": "MEMBER"}
        if pull is not None:
            data["pull_request"] = {"url": f"{base}/pulls/{number}",
                                    "html_url": f"{self.url}/{repo.full_name}/pull/{number}",
                                    "diff_url": f"{self.url}/{repo.full_name}/pull/{number}.diff",
                                    "patch_url":
                                    f"{self.url}/{repo.full_name}/pull/{number}.patch",
                                    "merged_at": iso(pull.merged_at)}
        return data

    def label_json(self, repo: SimRepo, name: str) -> dict[str, Any]:
        return {"id": _id_for(f"{repo.full_name}:{name}"), "node_id": f"L_{_id_for(name)}",
                "url": f"{self.url}/repos/{repo.full_name}/labels/{name}", "name": name,
                "color": "d73a4a", "default": False, "description": None}

    def pull_json(self, repo: SimRepo, pull: SimPull, full: bool) -> dict[str, Any]:
        base = f"{self.url}/repos/{repo.full_name}"
        html = f"{self.url}/{repo.full_name}/pull/{pull.number}"
        created = pull.merged_at - timedelta(hours=1)
        repo_data = self.repo_json(repo)

        def ref(name: str, sha: str) -> dict[str, Any]:
            return {"label": f"{repo.owner}:{name}", "ref": name, "sha": sha,
                    "user": self.user(repo.owner, "Organization"), "repo": repo_data}

        data: dict[str, Any] = {
            "url": f"{base}/pulls/{pull.number}", "id": _id_for(f"pr:{repo.full_name}"
                                                                  f"#{pull.number}"),
            "node_id": f"PR_{repo.id}_{pull.number}", "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch",
            "issue_url": f"{base}/issues/{pull.number}",
            "commits_url": f"{base}/pulls/{pull.number}/commits",
            "review_comments_url": f"{base}/pulls/{pull.number}/comments",
            "comments_url": f"{base}/issues/{pull.number}/comments",
            "statuses_url": f"{base}/statuses/{pull.head_sha}",
            "number": pull.number, "state": "closed", "locked": False, "title": pull.title,
            "user": self.user(pull.author), "body": pull.body,
            "labels": [self.label_json(repo, name) for name in pull.labels],
            "milestone": None, "active_lock_reason": None, "created_at": iso(created),
            "updated_at": iso(pull.updated_at), "closed_at": iso(pull.merged_at),
            "merged_at": iso(pull.merged_at) if pull.merged else None,
            "merge_commit_sha": pull.merge_commit_sha, "assignee": None, "assignees": [],
            "requested_reviewers": [], "requested_teams": [],
            "head": ref(pull.head_ref, pull.head_sha), "base": ref(pull.base_ref, pull.base_sha),
            "_links": {"self": {"href": f"{base}/pulls/{pull.number}"},
                       "html": {"href": html},
                       "issue": {"href": f"{base}/issues/{pull.number}"}},
            "author_association": "MEMBER", "auto_merge": None, "draft": False}
        if full:
            stats = self.pull_files(repo, pull)
            data.update({
                "merged": pull.merged, "mergeable": None, "rebaseable": None,
                "mergeable_state": "unknown",
                "merged_by": self.user(repo.owner) if pull.merged else None,
                "comments": len(self.comments_on(repo.full_name, pull.number)),
                "review_comments": 0, "maintainer_can_modify": False,
                "commits": len(pull.commit_shas),
                "additions": sum(f["additions"] for f in stats),
                "deletions": sum(f["deletions"] for f in stats),
                "changed_files": len(stats)})
        return data

    def commit_json(self, repo: SimRepo, sha: str) -> dict[str, Any]:
        fmt = "%H%x00%P%x00%T%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        out = repo.git("show", "-s", f"--format={fmt}", sha).stdout.decode()
        (full, parents, tree, an, ae, ad, cn, ce, cd, message) = out.split("\x00", 9)
        base = f"{self.url}/repos/{repo.full_name}"
        return {"sha": full, "node_id": f"C_{full}", "url": f"{base}/commits/{full}",
                "html_url": f"{self.url}/{repo.full_name}/commit/{full}",
                "comments_url": f"{base}/commits/{full}/comments",
                "commit": {"url": f"{base}/git/commits/{full}",
                           "author": {"name": an, "email": ae, "date": ad},
                           "committer": {"name": cn, "email": ce, "date": cd},
                           "message": message.rstrip("\n"),
                           "tree": {"sha": tree, "url": f"{base}/git/trees/{tree}"},
                           "comment_count": 0,
                           "verification": {"verified": False, "reason": "unsigned",
                                            "signature": None, "payload": None}},
                "author": self.user(an.split()[0].lower()),
                "committer": self.user(cn.split()[0].lower()),
                "parents": [{"sha": p, "url": f"{base}/commits/{p}",
                             "html_url": f"{self.url}/{repo.full_name}/commit/{p}"}
                            for p in parents.split()]}

    def pull_files(self, repo: SimRepo, pull: SimPull) -> list[dict[str, Any]]:
        """The PR's files as GitHub lists them: the diff of the merge against its base."""
        return self.diff_files(repo, pull.base_sha, pull.merge_commit_sha)

    def diff_files(self, repo: SimRepo, old: str, new: str) -> list[dict[str, Any]]:
        """The files changed from commit ``old`` to ``new``, as GitHub lists them."""
        listing = repo.git("diff", "--no-color", "-M", "--raw", "--numstat", "-z",
                           old, new).stdout.decode(errors="replace")
        entries = _parse_raw_numstat(listing)
        result = []
        for entry in entries:
            path, old_path, status, blob = (entry["path"], entry["old_path"], entry["status"],
                                            entry["blob"])
            base = f"{self.url}/repos/{repo.full_name}"
            item: dict[str, Any] = {
                "sha": blob, "filename": path, "status": status,
                "additions": entry["additions"], "deletions": entry["deletions"],
                "changes": entry["additions"] + entry["deletions"],
                "blob_url": f"{self.url}/{repo.full_name}/blob/{new}/{path}",
                "raw_url": f"{self.url}/{repo.full_name}/raw/{new}/{path}",
                "contents_url": f"{base}/contents/{path}?ref={new}"}
            if old_path is not None:
                item["previous_filename"] = old_path
            if not entry["binary"]:
                patch = _patch_body(repo, old, new, path, old_path)
                if patch:
                    item["patch"] = patch
            result.append(item)
        return result

    def read_file(self, repo: SimRepo, path: str, ref: str) -> tuple[bytes, str] | None:
        spec = f"{ref}:{path}"
        kind = repo.git("cat-file", "-t", spec, check=False)
        if kind.returncode != 0 or kind.stdout.strip() != b"blob":
            return None
        blob = repo.git("rev-parse", spec).stdout.decode().strip()
        return repo.git("cat-file", "blob", blob).stdout, blob


def _parse_raw_numstat(listing: str) -> list[dict[str, Any]]:
    """Parse `git diff --raw --numstat -z` output into one entry per file."""
    fields = listing.split("\x00")
    raw: list[dict[str, Any]] = []
    i = 0
    while i < len(fields) and fields[i].startswith(":"):
        meta = fields[i][1:].split()
        status_letter = meta[4][0]
        if status_letter in "RC":
            old, new = fields[i + 1], fields[i + 2]
            i += 3
        else:
            old, new = fields[i + 1], fields[i + 1]
            i += 2
        status = {"A": "added", "D": "removed", "M": "modified", "R": "renamed",
                  "C": "copied", "T": "changed"}.get(status_letter, "modified")
        raw.append({"path": new, "old_path": old if status_letter in "RC" else None,
                    "status": status, "blob": meta[3] if status_letter != "D" else meta[2]})
    stats: list[tuple[str, str]] = []
    while i < len(fields):
        if not fields[i]:
            i += 1
            continue
        parts = fields[i].split("\t")
        if len(parts) == 3 and parts[2] == "":  # rename: the two paths follow
            stats.append((parts[0], parts[1]))
            i += 3
        else:
            stats.append((parts[0], parts[1]))
            i += 1
    for entry, (added, deleted) in zip(raw, stats, strict=False):
        entry["binary"] = added == "-"
        entry["additions"] = 0 if added == "-" else int(added)
        entry["deletions"] = 0 if deleted == "-" else int(deleted)
    return raw


def _patch_body(repo: SimRepo, old: str, new: str, path: str, old_path: str | None) -> str:
    """The hunks of one file's diff, starting at the first `@@` line (GitHub's `patch`)."""
    paths = [old_path, path] if old_path else [path]
    diff = repo.git("diff", "--no-color", "-M", old, new, "--",
                    *paths).stdout.decode(errors="replace")
    start = diff.find("\n@@")
    if start < 0:
        return ""
    return diff[start + 1:].rstrip("\n")


# --------------------------------------------------------------------------- GraphQL subset


_TOKEN = re.compile(r'\s*(?:(\.\.\.)|([{}():,!$\[\]=@])|("(?:[^"\\]|\\.)*")|'
                    r"(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class _Field:
    name: str
    alias: str
    args: dict[str, Any]
    selections: list[_Field]


class _GraphQLParser:
    """Parses one query operation with fields, aliases, arguments and variables."""

    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        text = re.sub(r"#[^\n]*", "", text)
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text.rstrip()):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise ValueError(f"Parse error on {text[pos:pos + 10]!r}")
            self.tokens.append(match.group(0).strip())
            pos = match.end()
        self.pos = 0
        self.variables = variables

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if expected is not None and token != expected:
            raise ValueError(f"Parse error: expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def document(self) -> list[_Field]:
        if self.peek() in ("query",):
            self.take()
            if self.peek() not in ("{", "("):
                self.take()
            if self.peek() == "(":
                depth = 0
                while True:
                    token = self.take()
                    depth += token == "("
                    depth -= token == ")"
                    if depth == 0:
                        break
        elif self.peek() in ("mutation", "subscription"):
            raise ValueError("only queries are supported here")
        return self.selection_set()

    def selection_set(self) -> list[_Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            if self.peek() == "...":
                raise ValueError("fragments are not supported here")
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> _Field:
        name = self.take()
        alias = name
        if self.peek() == ":":
            self.take()
            name = self.take()
        args: dict[str, Any] = {}
        if self.peek() == "(":
            self.take()
            while self.peek() != ")":
                key = self.take()
                self.take(":")
                args[key] = self.value()
                if self.peek() == ",":
                    self.take()
            self.take(")")
        selections = self.selection_set() if self.peek() == "{" else []
        return _Field(name, alias, args, selections)

    def value(self) -> Any:
        token = self.take()
        if token == "$":
            return self.variables.get(self.take())
        if token.startswith('"'):
            return json.loads(token)
        if token == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            return items
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        return {"true": True, "false": False, "null": None}.get(token, token)


class _GraphQLError(Exception):
    def __init__(self, message: str, path: list[str], kind: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


Resolver = Callable[[dict[str, Any]], Any]


def _resolve(obj: Any, fields: list[_Field], path: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for f in fields:
        if f.name == "__typename":
            result[f.alias] = obj.get("__typename")
            continue
        if f.name not in obj:
            raise _GraphQLError(f"Field '{f.name}' doesn't exist on type "
                                f"'{obj.get('__typename', 'Query')}'", [*path, f.alias])
        value = obj[f.name]
        if callable(value):
            value = value(f.args)
        result[f.alias] = _shape(value, f, [*path, f.alias])
    return result


def _shape(value: Any, f: _Field, path: list[str]) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_shape(item, f, path) for item in value]
    if isinstance(value, dict):
        if not f.selections:
            raise _GraphQLError(f"Field must have selections (field '{f.name}' returns "
                                f"{value.get('__typename')} but has no selections.)", path)
        return _resolve(value, f.selections, path)
    return value


def _issue_node(sim: GitHubSimulator, repo: SimRepo, number: int) -> dict[str, Any]:
    issue = repo.issues.get(number) or SimIssue(number, f"Issue {number}")
    return {"__typename": "Issue", "id": f"I_{repo.id}_{number}", "number": number,
            "title": issue.title, "body": issue.body or "", "state": issue.state.upper(),
            "url": f"{sim.url}/{repo.full_name}/issues/{number}",
            "repository": {"__typename": "Repository", "nameWithOwner": repo.full_name,
                           "name": repo.name, "owner": {"__typename": "Organization",
                                                        "login": repo.owner}}}


def _connection(items: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
    first = args.get("first")
    if first is None and args.get("last") is None:
        raise _GraphQLError("You must provide a `first` or `last` value to properly paginate "
                            "the `closingIssuesReferences` connection.", [])
    start = int(base64.b64decode(args["after"]).decode().split(":")[1]) if args.get(
        "after") else 0
    page = items[start:start + int(first or 100)]
    cursors = [base64.b64encode(f"cursor:{start + i + 1}".encode()).decode()
               for i in range(len(page))]
    return {"__typename": "IssueConnection", "totalCount": len(items), "nodes": page,
            "edges": [{"__typename": "IssueEdge", "cursor": c, "node": n}
                      for c, n in zip(cursors, page, strict=True)],
            "pageInfo": {"__typename": "PageInfo",
                         "hasNextPage": start + len(page) < len(items),
                         "hasPreviousPage": start > 0,
                         "startCursor": cursors[0] if cursors else None,
                         "endCursor": cursors[-1] if cursors else None}}


def _graphql_root(sim: GitHubSimulator, installation_id: int) -> dict[str, Any]:
    def repository(args: dict[str, Any]) -> dict[str, Any]:
        name = f"{args.get('owner')}/{args.get('name')}"
        repo = sim.repos.get(name.lower())
        if repo is None or repo.installation_id != installation_id:
            raise _GraphQLError(f"Could not resolve to a Repository with the name '{name}'.",
                                ["repository"], "NOT_FOUND")
        return _graphql_repo(sim, repo)

    return {"__typename": "Query", "repository": repository,
            "viewer": {"__typename": "Bot", "login": sim.slug},
            "rateLimit": {"__typename": "RateLimit", "limit": 5000, "cost": 1,
                          "remaining": sim.rate_limit_remaining,
                          "resetAt": iso(datetime.now(UTC) + timedelta(hours=1))}}


def _graphql_repo(sim: GitHubSimulator, repo: SimRepo) -> dict[str, Any]:
    def pull_request(args: dict[str, Any]) -> dict[str, Any]:
        number = int(args.get("number", 0))
        pull = repo.pulls.get(number)
        if pull is None:
            raise _GraphQLError(f"Could not resolve to a PullRequest with the number of "
                                f"{number}.", ["repository", "pullRequest"], "NOT_FOUND")
        return {"__typename": "PullRequest", "id": f"PR_{repo.id}_{number}",
                "number": number, "title": pull.title, "body": pull.body or "",
                "merged": pull.merged, "mergedAt": iso(pull.merged_at),
                "url": f"{sim.url}/{repo.full_name}/pull/{number}",
                "closingIssuesReferences": lambda a: _connection(
                    [_issue_node(sim, repo, n) for n in pull.closing_issues], a)}

    return {"__typename": "Repository", "id": f"R_{repo.id}", "name": repo.name,
            "nameWithOwner": repo.full_name, "pullRequest": pull_request,
            "defaultBranchRef": {"__typename": "Ref", "name": repo.default_branch}}


# --------------------------------------------------------------------------- HTTP


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/app/installations/(\d+)/access_tokens$"), "create_token"),
    ("GET", re.compile(r"^/app$"), "get_app"),
    ("GET", re.compile(r"^/app/installations$"), "list_installations"),
    ("GET", re.compile(r"^/app/hook/deliveries$"), "list_hook_deliveries"),
    ("POST", re.compile(r"^/app/hook/deliveries/(\d+)/attempts$"), "redeliver"),
    ("GET", re.compile(r"^/app/installations/(\d+)$"), "get_installation"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/installation$"), "repo_installation"),
    ("GET", re.compile(r"^/installation/repositories$"), "installation_repositories"),
    ("GET", re.compile(r"^/rate_limit$"), "rate_limit"),
    ("POST", re.compile(r"^/graphql$"), "graphql"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)$"), "get_repo"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/contents/(.+)$"), "get_contents"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$"), "list_pulls"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)$"), "get_pull"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)/commits$"), "pull_commits"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)/files$"), "pull_files"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)$"), "get_issue"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$"), "list_comments"),
    ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$"), "create_comment"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$"), "get_comment"),
    ("PATCH", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$"), "update_comment"),
    ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs$"), "create_check_run"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)$"), "get_check_run"),
    ("PATCH", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)$"), "update_check_run"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([^/]+)$"), "get_commit"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([^/]+)/check-runs$"),
     "list_check_runs_for_ref"),
]


@dataclass
class _Call:
    """One request as the routes see it."""

    sim: GitHubSimulator
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def credentials(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return (scheme.lower(), token.strip()) if token else None

    def app_jwt(self) -> None:
        creds = self.credentials()
        if creds is None or creds[0] != "bearer":
            raise ApiError(401, "A JSON web token could not be decoded")
        self.sim.verify_jwt(creds[1])

    def installation(self) -> int:
        creds = self.credentials()
        if creds is None:
            raise ApiError(401, "Requires authentication")
        if creds[1].count(".") == 2:
            raise ApiError(403, "A JSON web token is not allowed here; use an installation "
                                "access token")
        return self.sim.installation_for_token(creds[1])

    def repo(self, owner: str, name: str) -> SimRepo:
        installation_id = self.installation()
        repo = self.sim.repo(f"{owner}/{name}")
        if repo.installation_id != installation_id:
            raise ApiError(404, "Not Found")
        return repo

    def paginate(self, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = min(max(int(self.param("per_page", "30") or 30), 1), 100)
            page = max(int(self.param("page", "1") or 1), 1)
        except ValueError:
            raise ApiError(422, "Validation Failed") from None
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []

        def url(n: int) -> str:
            query = {k: v[0] for k, v in self.query.items()}
            query.update({"per_page": str(per_page), "page": str(n)})
            return f"{self.sim.url}{self.path}?{urlencode(query)}"

        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
        return chunk, ({"Link": ", ".join(links)} if links else {})


Answer = tuple[int, Any, dict[str, str]]


class _Routes:
    """One method per endpoint; each returns (status, JSON body, extra headers)."""

    @staticmethod
    def create_token(call: _Call, installation_id: str) -> Answer:
        call.app_jwt()
        installation = call.sim.installations.get(int(installation_id))
        if installation is None:
            raise ApiError(404, "Not Found")
        if installation.suspended:
            raise ApiError(403, "This installation has been suspended")
        token, expires = call.sim.mint_token(installation.id)
        return 201, {"token": token, "expires_at": iso(expires),
                     "permissions": call.sim.app_json()["permissions"],
                     "repository_selection": "selected"}, {}

    @staticmethod
    def get_app(call: _Call) -> Answer:
        call.app_jwt()
        return 200, call.sim.app_json(), {}

    @staticmethod
    def list_installations(call: _Call) -> Answer:
        call.app_jwt()
        items = [call.sim.installation_json(i) for i in call.sim.installations.values()]
        page, headers = call.paginate(items)
        return 200, page, headers

    @staticmethod
    def list_hook_deliveries(call: _Call) -> Answer:
        """Newest first, paginated by an opaque cursor as GitHub does."""
        call.app_jwt()
        with call.sim._lock:
            items = sorted(call.sim.hook_deliveries, key=lambda d: (d.delivered_at, d.id),
                           reverse=True)
        try:
            per_page = min(max(int(call.param("per_page", "30") or 30), 1), 100)
        except ValueError:
            raise ApiError(422, "Validation Failed") from None
        cursor = call.param("cursor") or "v1_0"
        if not cursor.startswith("v1_") or not cursor[3:].isdigit():
            raise ApiError(422, "Invalid cursor")
        offset = int(cursor[3:])
        page = items[offset: offset + per_page]
        headers = {}
        if offset + per_page < len(items):
            query = urlencode({"per_page": per_page, "cursor": f"v1_{offset + per_page}"})
            headers["Link"] = f'<{call.sim.url}{call.path}?{query}>; rel="next"'
        return 200, [d.item() for d in page], headers

    @staticmethod
    def redeliver(call: _Call, delivery_id: str) -> Answer:
        call.app_jwt()
        call.sim.redeliver(int(delivery_id))
        return 202, {}, {}

    @staticmethod
    def get_installation(call: _Call, installation_id: str) -> Answer:
        call.app_jwt()
        installation = call.sim.installations.get(int(installation_id))
        if installation is None:
            raise ApiError(404, "Not Found")
        return 200, call.sim.installation_json(installation), {}

    @staticmethod
    def repo_installation(call: _Call, owner: str, name: str) -> Answer:
        call.app_jwt()
        repo = call.sim.repo(f"{owner}/{name}")
        return 200, call.sim.installation_json(call.sim.installations[repo.installation_id]), {}

    @staticmethod
    def installation_repositories(call: _Call) -> Answer:
        installation_id = call.installation()
        repos = [call.sim.repo_json(r) for r in call.sim.repos.values()
                 if r.installation_id == installation_id]
        page, headers = call.paginate(repos)
        return 200, {"total_count": len(repos), "repository_selection": "selected",
                     "repositories": page}, headers

    @staticmethod
    def rate_limit(call: _Call) -> Answer:
        call.installation()
        reset = int(time.time()) + 3600
        core = {"limit": 5000, "remaining": call.sim.rate_limit_remaining,
                "reset": reset, "used": 5000 - call.sim.rate_limit_remaining}
        return 200, {"resources": {"core": core, "graphql": core}, "rate": core}, {}

    @staticmethod
    def get_repo(call: _Call, owner: str, name: str) -> Answer:
        return 200, call.sim.repo_json(call.repo(owner, name)), {}

    @staticmethod
    def get_contents(call: _Call, owner: str, name: str, path: str) -> Answer:
        repo = call.repo(owner, name)
        ref = call.param("ref") or repo.default_branch
        found = call.sim.read_file(repo, path, ref)
        if found is None:
            raise ApiError(404, "Not Found", extra={"status": "404"})
        content, blob = found
        encoded = base64.encodebytes(content).decode()
        base = f"{call.sim.url}/repos/{repo.full_name}"
        html = f"{call.sim.url}/{repo.full_name}/blob/{ref}/{path}"
        git = f"{base}/git/blobs/{blob}"
        self_url = f"{base}/contents/{path}?ref={ref}"
        return 200, {"type": "file", "encoding": "base64", "size": len(content),
                     "name": path.rsplit("/", 1)[-1], "path": path, "content": encoded,
                     "sha": blob, "url": self_url, "git_url": git, "html_url": html,
                     "download_url": f"{call.sim.url}/{repo.full_name}/raw/{ref}/{path}",
                     "_links": {"self": self_url, "git": git, "html": html}}, {}

    @staticmethod
    def list_pulls(call: _Call, owner: str, name: str) -> Answer:
        repo = call.repo(owner, name)
        state = call.param("state", "open")
        if state not in ("open", "closed", "all"):
            raise ApiError(422, "Validation Failed")
        pulls = [] if state == "open" else list(repo.pulls.values())
        sort = call.param("sort", "created")
        key: Callable[[SimPull], Any] = {
            "created": lambda p: (p.merged_at - timedelta(hours=1), p.number),
            "updated": lambda p: (p.updated_at, p.number),
            "popularity": lambda p: p.number, "long-running": lambda p: p.number,
        }.get(sort or "created", lambda p: p.number)
        default_direction = "desc"
        reverse = (call.param("direction", default_direction) or default_direction) == "desc"
        pulls.sort(key=key, reverse=reverse)
        page, headers = call.paginate([call.sim.pull_json(repo, p, full=False) for p in pulls])
        return 200, page, headers

    @staticmethod
    def _pull(call: _Call, owner: str, name: str, number: str) -> tuple[SimRepo, SimPull]:
        repo = call.repo(owner, name)
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise ApiError(404, "Not Found")
        return repo, pull

    @staticmethod
    def get_pull(call: _Call, owner: str, name: str, number: str) -> Answer:
        repo, pull = _Routes._pull(call, owner, name, number)
        return 200, call.sim.pull_json(repo, pull, full=True), {}

    @staticmethod
    def pull_commits(call: _Call, owner: str, name: str, number: str) -> Answer:
        repo, pull = _Routes._pull(call, owner, name, number)
        items = [call.sim.commit_json(repo, sha) for sha in pull.commit_shas[:250]]
        page, headers = call.paginate(items)
        return 200, page, headers

    @staticmethod
    def pull_files(call: _Call, owner: str, name: str, number: str) -> Answer:
        repo, pull = _Routes._pull(call, owner, name, number)
        page, headers = call.paginate(call.sim.pull_files(repo, pull)[:3000])
        return 200, page, headers

    @staticmethod
    def get_issue(call: _Call, owner: str, name: str, number: str) -> Answer:
        return 200, call.sim.issue_json(call.repo(owner, name), int(number)), {}

    @staticmethod
    def _comment_json(call: _Call, comment: SimComment) -> dict[str, Any]:
        base = f"{call.sim.url}/repos/{comment.repository}"
        kind = "pull" if comment.issue_number in call.sim.repo(comment.repository).pulls \
            else "issues"
        data = {"id": comment.id, "node_id": f"IC_{comment.id}",
                "url": f"{base}/issues/comments/{comment.id}",
                "html_url": f"{call.sim.url}/{comment.repository}/{kind}/"
                            f"{comment.issue_number}#issuecomment-{comment.id}",
                "body": comment.body, "user": call.sim.user(comment.user, comment.user_type),
                "created_at": iso(comment.created_at), "updated_at": iso(comment.updated_at),
                "issue_url": f"{base}/issues/{comment.issue_number}",
                "author_association": "NONE", "performed_via_github_app": None}
        if comment.user_type == "Bot":
            data["performed_via_github_app"] = call.sim.app_json()
        return data

    @staticmethod
    def _issue_exists(repo: SimRepo, number: int) -> None:
        if number not in repo.pulls and number not in repo.issues:
            raise ApiError(404, "Not Found")

    @staticmethod
    def list_comments(call: _Call, owner: str, name: str, number: str) -> Answer:
        repo = call.repo(owner, name)
        _Routes._issue_exists(repo, int(number))
        items = [_Routes._comment_json(call, c)
                 for c in call.sim.comments_on(repo.full_name, int(number))]
        page, headers = call.paginate(items)
        return 200, page, headers

    @staticmethod
    def _body_text(call: _Call) -> str:
        if not isinstance(call.body, dict) or not isinstance(call.body.get("body"), str):
            raise ApiError(422, "Invalid request.\n\n\"body\" wasn't supplied.")
        text: str = call.body["body"]
        if len(text) > 65536:
            raise ApiError(422, "Validation Failed", extra={"errors": [{
                "resource": "IssueComment", "code": "unprocessable", "field": "data",
                "message": "Body is too long (maximum is 65536 characters)"}]})
        return text

    @staticmethod
    def create_comment(call: _Call, owner: str, name: str, number: str) -> Answer:
        repo = call.repo(owner, name)
        _Routes._issue_exists(repo, int(number))
        text = _Routes._body_text(call)
        now = datetime.now(UTC)
        with call.sim._lock:
            call.sim._next_comment_id += 1
            comment = SimComment(call.sim._next_comment_id, repo.full_name, int(number), text,
                                 call.sim.bot_login, "Bot", now, now)
            call.sim.comments[comment.id] = comment
        return 201, _Routes._comment_json(call, comment), {
            "Location": f"{call.sim.url}/repos/{repo.full_name}/issues/comments/{comment.id}"}

    @staticmethod
    def _comment(call: _Call, owner: str, name: str, comment_id: str) -> SimComment:
        repo = call.repo(owner, name)
        comment = call.sim.comments.get(int(comment_id))
        if comment is None or comment.repository.lower() != repo.full_name.lower():
            raise ApiError(404, "Not Found")
        return comment

    @staticmethod
    def get_comment(call: _Call, owner: str, name: str, comment_id: str) -> Answer:
        return 200, _Routes._comment_json(call, _Routes._comment(call, owner, name,
                                                                 comment_id)), {}

    @staticmethod
    def update_comment(call: _Call, owner: str, name: str, comment_id: str) -> Answer:
        comment = _Routes._comment(call, owner, name, comment_id)
        if comment.user != call.sim.bot_login:
            raise ApiError(403, "Resource not accessible by integration")
        comment.body = _Routes._body_text(call)
        comment.updated_at = datetime.now(UTC)
        return 200, _Routes._comment_json(call, comment), {}

    # -- check runs (GitHub's Checks API: only the App that created a run may change it)

    CHECK_STATUSES = ("queued", "in_progress", "completed")
    CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success",
                         "skipped", "timed_out")

    @staticmethod
    def _check_run_json(call: _Call, run: SimCheckRun) -> dict[str, Any]:
        base = f"{call.sim.url}/repos/{run.repository}"
        app = call.sim.app_json()
        if run.app_id != call.sim.app_id:
            app = {**app, "id": run.app_id, "slug": f"app-{run.app_id}",
                   "node_id": f"A_{run.app_id}", "name": f"App {run.app_id}"}
        output = {"title": run.output.get("title"), "summary": run.output.get("summary"),
                  "text": run.output.get("text"), "annotations_count": 0,
                  "annotations_url": f"{base}/check-runs/{run.id}/annotations"}
        return {"id": run.id, "head_sha": run.head_sha, "node_id": f"CR_{run.id}",
                "external_id": run.external_id or "", "url": f"{base}/check-runs/{run.id}",
                "html_url": f"{call.sim.url}/{run.repository}/runs/{run.id}",
                "details_url": run.details_url or app["html_url"], "status": run.status,
                "conclusion": run.conclusion, "started_at": iso(run.started_at),
                "completed_at": iso(run.completed_at) if run.completed_at else None,
                "output": output, "name": run.name,
                "check_suite": {"id": _id_for(f"{run.repository}@{run.head_sha}")},
                "app": app, "pull_requests": []}

    @staticmethod
    def _commit_sha(repo: SimRepo, ref: str) -> str:
        found = repo.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if found.returncode != 0:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return found.stdout.decode().strip()

    @staticmethod
    def _check_fields(call: _Call, run: SimCheckRun | None) -> dict[str, Any]:
        """The body's fields, checked as GitHub does; the run's state once they apply."""
        body = call.body if isinstance(call.body, dict) else {}
        for name in (("name", "head_sha") if run is None else ()):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ApiError(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
        status = body.get("status", run.status if run else "queued")
        conclusion = body.get("conclusion", run.conclusion if run else None)
        if status not in _Routes.CHECK_STATUSES:
            raise ApiError(422, f"Invalid request.\n\n{status!r} is not a member of the "
                                f"status enum.")
        if conclusion is not None:
            if conclusion not in _Routes.CHECK_CONCLUSIONS:
                raise ApiError(422, f"Invalid request.\n\n{conclusion!r} is not a member "
                                    f"of the conclusion enum.")
            status = "completed"  # GitHub: a conclusion completes the run
        elif status == "completed":
            raise ApiError(422, "Invalid request.\n\nNo conclusion was given for a "
                                "completed check run.")
        output = body.get("output", run.output if run else {})
        if "output" in body:
            if not isinstance(output, dict) or not isinstance(output.get("title"), str) \
                    or not isinstance(output.get("summary"), str):
                raise ApiError(422, 'Invalid request.\n\n"title" and "summary" are required '
                                    "in output.")
            if len(output["summary"]) > 65535 or len(output.get("text") or "") > 65535:
                raise ApiError(422, "Validation Failed", extra={"errors": [{
                    "resource": "CheckRun", "code": "custom", "field": "output",
                    "message": "Output summary and text are each limited to 65535 "
                               "characters"}]})
        return {"status": status, "conclusion": conclusion, "output": dict(output)}

    @staticmethod
    def create_check_run(call: _Call, owner: str, name: str) -> Answer:
        repo = call.repo(owner, name)
        fields = _Routes._check_fields(call, None)
        sha = _Routes._commit_sha(repo, call.body["head_sha"])
        if sha != call.body["head_sha"]:
            raise ApiError(422, f"No commit found for SHA: {call.body['head_sha']}")
        now = datetime.now(UTC)
        with call.sim._lock:
            call.sim._next_check_run_id += 1
            run = SimCheckRun(call.sim._next_check_run_id, repo.full_name, sha,
                              call.body["name"], fields["status"], fields["conclusion"],
                              fields["output"], call.sim.app_id, now,
                              now if fields["status"] == "completed" else None,
                              call.body.get("details_url"), call.body.get("external_id"),
                              [call.body])
            call.sim.check_runs[run.id] = run
        return 201, _Routes._check_run_json(call, run), {}

    @staticmethod
    def _check_run(call: _Call, owner: str, name: str, run_id: str) -> SimCheckRun:
        repo = call.repo(owner, name)
        run = call.sim.check_runs.get(int(run_id))
        if run is None or run.repository.lower() != repo.full_name.lower():
            raise ApiError(404, "Not Found")
        return run

    @staticmethod
    def get_check_run(call: _Call, owner: str, name: str, run_id: str) -> Answer:
        return 200, _Routes._check_run_json(call, _Routes._check_run(call, owner, name,
                                                                     run_id)), {}

    @staticmethod
    def update_check_run(call: _Call, owner: str, name: str, run_id: str) -> Answer:
        run = _Routes._check_run(call, owner, name, run_id)
        if run.app_id != call.sim.app_id:
            raise ApiError(403, "Resource not accessible by integration")
        fields = _Routes._check_fields(call, run)
        with call.sim._lock:
            if fields["status"] == "completed" and run.completed_at is None:
                run.completed_at = datetime.now(UTC)
            run.status, run.conclusion, run.output = (fields["status"], fields["conclusion"],
                                                      fields["output"])
            run.name = call.body.get("name", run.name)
            run.sent.append(call.body)
        return 200, _Routes._check_run_json(call, run), {}

    @staticmethod
    def get_commit(call: _Call, owner: str, name: str, ref: str) -> Answer:
        """One commit with its stats and files (the diff against its first parent)."""
        repo = call.repo(owner, name)
        sha = _Routes._commit_sha(repo, ref)
        data = call.sim.commit_json(repo, sha)
        parent = data["parents"][0]["sha"] if data["parents"] else EMPTY_TREE
        files = call.sim.diff_files(repo, parent, sha)[:300]
        additions = sum(f["additions"] for f in files)
        deletions = sum(f["deletions"] for f in files)
        data.update(stats={"total": additions + deletions, "additions": additions,
                           "deletions": deletions}, files=files)
        return 200, data, {}

    @staticmethod
    def list_check_runs_for_ref(call: _Call, owner: str, name: str, ref: str) -> Answer:
        repo = call.repo(owner, name)
        runs = call.sim.check_runs_on(repo.full_name, _Routes._commit_sha(repo, ref))
        wanted_name, wanted_status = call.param("check_name"), call.param("status")
        app_id = call.param("app_id")
        runs = [r for r in runs if (wanted_name is None or r.name == wanted_name)
                and (wanted_status is None or r.status == wanted_status)
                and (app_id is None or str(r.app_id) == app_id)]
        if call.param("filter", "latest") == "latest":  # the newest run per name and App
            newest = {(r.name, r.app_id): r for r in runs}
            runs = sorted(newest.values(), key=lambda r: r.id)
        runs.reverse()
        page, headers = call.paginate([_Routes._check_run_json(call, r) for r in runs])
        return 200, {"total_count": len(runs), "check_runs": page}, headers

    @staticmethod
    def graphql(call: _Call) -> Answer:
        creds = call.credentials()
        if creds is None:
            raise ApiError(401, "This endpoint requires you to be authenticated.")
        installation_id = call.installation()
        if not isinstance(call.body, dict) or not isinstance(call.body.get("query"), str):
            return 200, {"errors": [{"message": "A query attribute must be specified and "
                                                "must be a string."}]}, {}
        variables = call.body.get("variables") or {}
        try:
            fields = _GraphQLParser(call.body["query"], variables).document()
        except (ValueError, IndexError) as exc:
            return 200, {"errors": [{"message": str(exc)}]}, {}
        try:
            data = _resolve(_graphql_root(call.sim, installation_id), fields, [])
        except _GraphQLError as exc:
            error: dict[str, Any] = {"message": str(exc), "path": exc.path,
                                     "locations": [{"line": 1, "column": 1}]}
            if exc.kind:
                error["type"] = exc.kind
            partial = {exc.path[0]: None} if exc.path else None
            return 200, {"data": partial, "errors": [error]}, {}
        return 200, {"data": data}, {}


class _Handler(BaseHTTPRequestHandler):
    sim: GitHubSimulator
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        if path.startswith("/api/v3/"):
            path = path[len("/api/v3"):]
        if path == "/api/graphql":
            path = "/graphql"
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            answer: Answer = (400, {"message": "Problems parsing JSON",
                                    "documentation_url": DOCS}, {})
        else:
            answer = self._answer(method, path, parse_qs(parts.query), headers, body)
        status, payload, extra = answer
        logged = dict(headers)
        if "authorization" in logged:
            logged["authorization"] = logged["authorization"].split(" ")[0] + " <redacted>"
        with self.sim._lock:
            self.sim.requests.append(RecordedRequest(method, path, parse_qs(parts.query), logged,
                                                     body, status, time.time()))
            if self.sim.rate_limit_remaining > 1:
                self.sim.rate_limit_remaining -= 1
        self._send(status, payload, extra, path)

    def _answer(self, method: str, path: str, query: dict[str, list[str]],
                headers: dict[str, str], body: Any) -> Answer:
        fault = self.sim._take_fault(method, path)
        if fault is not None:
            return fault.status, fault.body, dict(fault.headers)
        call = _Call(self.sim, method, path, query, headers, body)
        for route_method, pattern, handler in _ROUTES:
            match = pattern.match(path)
            if match is None or route_method != method:
                continue
            try:
                result: Answer = getattr(_Routes, handler)(call, *match.groups())
                return result
            except ApiError as exc:
                return exc.status, exc.body, exc.headers
        return 404, {"message": "Not Found", "documentation_url": DOCS}, {}

    def _send(self, status: int, payload: Any, extra: dict[str, str], path: str) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        self.send_header("X-GitHub-Request-Id", secrets.token_hex(8).upper())
        lowered = {k.lower() for k in extra}
        if "x-ratelimit-remaining" not in lowered:
            remaining = self.sim.rate_limit_remaining
            self.send_header("x-ratelimit-limit", "5000")
            self.send_header("x-ratelimit-remaining", str(remaining))
            self.send_header("x-ratelimit-used", str(5000 - remaining))
            self.send_header("x-ratelimit-reset", str(int(time.time()) + 3600))
            self.send_header("x-ratelimit-resource", "graphql" if path == "/graphql"
                             else "core")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

