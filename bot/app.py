"""The Flask application factory."""

from __future__ import annotations

from flask import Flask, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bot import dashboard, metrics, webhooks
from bot.logs import configure_logging
from bot.runtime import Runtime
from bot.settings import Settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the web app; tests pass their own settings or runtime.

    gunicorn calls this with no arguments: settings then come from the environment and the
    App's credentials are required.
    """
    if runtime is None:
        settings = settings or Settings.from_env()
        configure_logging(settings.log_format, settings.log_level, settings.secrets)
        runtime = Runtime(settings.require_github_app())
    app = Flask("bot")
    app.extensions["davinci"] = runtime
    webhooks.install(app, runtime)
    dashboard.install(app, runtime)

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    @app.get("/readyz")
    def readyz() -> tuple[dict[str, object], int]:
        failed = {}
        try:
            runtime.db.ping()
        except SQLAlchemyError as exc:
            failed["database"] = type(exc).__name__
        try:
            runtime.redis.ping()
        except RedisError as exc:
            failed["redis"] = type(exc).__name__
        if failed:
            return {"status": "unavailable", "failed": failed}, 503
        return {"status": "ready"}, 200

    @app.get("/metrics")
    def metrics_text() -> Response:
        webhooks.flush(app)  # this process's latest deliveries and counts are in the figures
        return Response(metrics.render(runtime), mimetype="text/plain; version=0.0.4")

    return app
