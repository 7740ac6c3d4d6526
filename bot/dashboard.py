"""The operator dashboard: a read-only page at `/` and the same data as JSON under `/api/`.

Off (404) unless `DAVINCI_DASHBOARD_TOKEN` is set. Requests carry `Authorization: Bearer
<token>`; a browser may log in once at `/login` and then holds a signed session cookie.
Without credentials the answer is 401, with wrong ones 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from bot.dashboard_data import collect
from bot.runtime import Runtime

blueprint = Blueprint("dashboard", __name__)
SESSION_KEY = "dashboard"


def install(app: Flask, runtime: Runtime) -> None:
    token = runtime.settings.dashboard_token
    if token:
        # Stable across gunicorn workers and restarts, and changes when the token rotates.
        app.secret_key = hmac.new(token.encode(), b"davinci-dashboard-session",
                                  hashlib.sha256).hexdigest()
        app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.register_blueprint(blueprint)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["davinci"]
    return runtime


def _token_matches(given: str) -> bool:
    expected = _runtime().settings.dashboard_token or ""
    return hmac.compare_digest(given.encode(), expected.encode())


def protected(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _runtime().settings.dashboard_token:
            abort(404)
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not _token_matches(given.strip()):
                abort(403)
            return view(*args, **kwargs)
        if session.get(SESSION_KEY) == _session_tag():
            return view(*args, **kwargs)
        if request.path.startswith("/api/") or not request.accept_mimetypes.accept_html:
            return Response('{"error": "dashboard token required"}', 401,
                            {"WWW-Authenticate": 'Bearer realm="davinci"',
                             "Content-Type": "application/json"})
        return Response(render_template("login.html", error=None), 401,
                        {"WWW-Authenticate": 'Bearer realm="davinci"'})
    return wrapper


def _session_tag() -> str:
    token = _runtime().settings.dashboard_token or ""
    return hashlib.sha256(b"session:" + token.encode()).hexdigest()[:32]


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if not _runtime().settings.dashboard_token:
        abort(404)
    if request.method == "GET":
        return render_template("login.html", error=None)
    if not _token_matches(request.form.get("token", "")):
        return Response(render_template("login.html", error="That token is not right."), 403)
    session.clear()
    session[SESSION_KEY] = _session_tag()
    session.permanent = False
    return redirect(url_for("dashboard.index"))


@blueprint.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("dashboard.login"))


@blueprint.get("/")
@protected
def index() -> Any:
    return render_template("dashboard.html", data=collect(_runtime()))


@blueprint.get("/api/overview")
@protected
def api_overview() -> Any:
    return collect(_runtime())
