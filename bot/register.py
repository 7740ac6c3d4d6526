"""`davinci app register`: create the GitHub App from its manifest in one browser round trip.

GitHub's manifest flow: the browser POSTs the manifest to GitHub, GitHub redirects back with a
one-hour `code`, and `POST /app-manifests/{code}/conversions` returns the App's id, private key
and webhook secret. `installation` events reach every App without being subscribed to, so the
manifest lists the other three events.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, redirect, request

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "infra" / "github-app-manifest.json"
DEFAULT_PERMISSIONS = {"contents": "read", "metadata": "read", "pull_requests": "write",
                       "issues": "write", "checks": "write"}
DEFAULT_EVENTS = ["pull_request", "installation_repositories", "issue_comment"]


class RegistrationError(RuntimeError):
    """GitHub refused the conversion or the callback was not ours."""


@dataclass(frozen=True)
class AppCredentials:
    app_id: int
    slug: str
    html_url: str
    pem: str
    webhook_secret: str
    client_id: str
    client_secret: str


def web_url_for(api_url: str) -> str:
    """github.com for api.github.com; the host itself for GitHub Enterprise (`/api/v3`)."""
    api_url = api_url.rstrip("/")
    if api_url == "https://api.github.com":
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


def build_manifest(webhook_url: str, redirect_url: str, name: str = "daVinci-Agency",
                   homepage: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "url": homepage or "https://github.com/apps/" + name.lower().replace(" ", "-"),
        "description": ("Turns chains of merged pull requests into verified long-horizon "
                        "training trajectories for coding agents."),
        "hook_attributes": {"url": webhook_url, "active": True},
        "redirect_url": redirect_url,
        "public": False,
        "default_permissions": dict(DEFAULT_PERMISSIONS),
        "default_events": list(DEFAULT_EVENTS),
    }


def convert(api_url: str, code: str, timeout: float = 30.0) -> AppCredentials:
    """Exchange the manifest code for the App's credentials."""
    if not code.replace("-", "").replace("_", "").isalnum():
        raise RegistrationError("the code GitHub sent back is malformed")
    if not api_url.startswith(("https://", "http://")):
        raise RegistrationError(f"GITHUB_API_URL must be an http(s) URL, not {api_url!r}")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{api_url.rstrip('/')}/app-manifests/{code}/conversions", method="POST", data=b"",
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:  # noqa: S310 - our API URL
            data = json.load(answer)
    except urllib.error.HTTPError as exc:
        raise RegistrationError(f"GitHub refused the conversion ({exc.code}); codes expire "
                                "after one hour, start again") from exc
    return AppCredentials(app_id=int(data["id"]), slug=data.get("slug", ""),
                          html_url=data.get("html_url", ""), pem=data["pem"],
                          webhook_secret=data.get("webhook_secret") or "",
                          client_id=data.get("client_id", ""),
                          client_secret=data.get("client_secret", ""))


def save(credentials: AppCredentials, directory: Path) -> Path:
    """Write the key and an env file readable only by the owner; returns the env file."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / f"{credentials.slug or credentials.app_id}.private-key.pem"
    env = directory / "github-app.env"
    _write_private(key, credentials.pem)
    _write_private(env, "".join(f"{name}={value}\n" for name, value in (
        ("GITHUB_APP_ID", credentials.app_id),
        ("GITHUB_PRIVATE_KEY_PATH", key.resolve()),
        ("GITHUB_WEBHOOK_SECRET", credentials.webhook_secret),
        ("GITHUB_CLIENT_ID", credentials.client_id),
        ("GITHUB_CLIENT_SECRET", credentials.client_secret),
    )))
    return env


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def registration_app(manifest: dict[str, Any], api_url: str, out_dir: Path,
                     org: str | None = None, web_url: str | None = None) -> Flask:
    """The tiny local web app that drives the browser through the flow."""
    app = Flask("bot.register")
    state = secrets.token_urlsafe(16)
    app.config["result"] = None
    web = web_url or web_url_for(api_url)
    target = (f"{web}/organizations/{org}/settings/apps/new" if org
              else f"{web}/settings/apps/new")

    @app.get("/")
    def start() -> Response:
        page = (
            "<!doctype html><title>Register daVinci-Agency</title>"
            "<p>This creates the GitHub App from its manifest.</p>"
            f'<form method="post" action="{html.escape(target)}?state={state}">'
            f'<input type="hidden" name="manifest" value="{html.escape(json.dumps(manifest))}">'
            '<button type="submit">Register the GitHub App</button></form>')
        return Response(page, mimetype="text/html")

    @app.get("/callback")
    def callback() -> Any:
        if not secrets.compare_digest(request.args.get("state", ""), state):
            return Response("This callback does not belong to this registration.", 400)
        try:
            credentials = convert(api_url, request.args.get("code", ""))
        except RegistrationError as exc:
            return Response(str(exc), 502)
        env_file = save(credentials, out_dir)
        app.config["result"] = (credentials, env_file)
        return redirect(f"{credentials.html_url}/installations/new")

    app.config["state"] = state
    return app
