"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from bot import dashboard
from bot.runtime import Runtime
from bot.settings import Settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the web app; tests pass their own settings or runtime."""
    if runtime is None:
        runtime = Runtime(settings or Settings.from_env())
    app = Flask("bot")
    app.extensions["davinci"] = runtime
    dashboard.install(app, runtime)

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    return app
