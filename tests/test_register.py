"""The manifest flow's local half, against a server that answers like GitHub's conversion API."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.register import build_manifest, registration_app, web_url_for


@pytest.fixture
def github_api() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            calls.append(self.path)
            if self.path != "/app-manifests/good-code/conversions":
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"id": 4242, "slug": "davinci-test", "node_id": "A_1",
                               "html_url": "https://github.com/apps/davinci-test",
                               "pem": "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA "
                                      "PRIVATE KEY-----\n",
                               "webhook_secret": "whsec", "client_id": "Iv1.x",
                               "client_secret": "cs"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()


def test_manifest_asks_for_the_permissions_and_events_the_bot_needs() -> None:
    manifest = build_manifest("https://bot.example.org/webhooks/github",
                              "http://localhost:3000/callback")
    assert manifest["default_permissions"] == {
        "contents": "read", "metadata": "read", "pull_requests": "write", "issues": "write",
        "checks": "write"}
    assert set(manifest["default_events"]) == {"pull_request", "installation_repositories",
                                               "issue_comment"}
    assert manifest["hook_attributes"] == {"url": "https://bot.example.org/webhooks/github",
                                           "active": True}
    shipped = json.loads((Path(__file__).parent.parent / "infra" /
                          "github-app-manifest.json").read_text())
    assert shipped["default_permissions"] == manifest["default_permissions"]
    assert shipped["default_events"] == manifest["default_events"]


def test_web_url_for_github_and_enterprise() -> None:
    assert web_url_for("https://api.github.com") == "https://github.com"
    assert web_url_for("https://ghe.example.org/api/v3") == "https://ghe.example.org"


def test_callback_exchanges_the_code_and_saves_private_files(
        github_api: tuple[str, list[str]], tmp_path: Path) -> None:
    api, calls = github_api
    app = registration_app(build_manifest("https://x/webhooks/github", "http://l/cb"), api,
                           tmp_path / "creds", org="octo-org", web_url="https://github.com")
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "https://github.com/organizations/octo-org/settings/apps/new?state=" in page
    assert "&quot;pull_requests&quot;: &quot;write&quot;" in page

    assert client.get("/callback?code=good-code&state=wrong").status_code == 400
    assert calls == []

    answer = client.get(f"/callback?code=good-code&state={app.config['state']}")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://github.com/apps/davinci-test/installations/new"
    env = (tmp_path / "creds" / "github-app.env")
    assert "GITHUB_APP_ID=4242\n" in env.read_text()
    assert "GITHUB_WEBHOOK_SECRET=whsec\n" in env.read_text()
    key = tmp_path / "creds" / "davinci-test.private-key.pem"
    assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    for path in (env, key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_expired_code_is_reported(github_api: tuple[str, list[str]], tmp_path: Path) -> None:
    api, _ = github_api
    app = registration_app(build_manifest("https://x/webhooks/github", "http://l/cb"), api,
                           tmp_path)
    answer = app.test_client().get(f"/callback?code=old-code&state={app.config['state']}")
    assert answer.status_code == 502
    assert "expire" in answer.get_data(as_text=True)
    assert not (tmp_path / "github-app.env").exists()
