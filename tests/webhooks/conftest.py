from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.app import create_app
from bot.db import Database
from bot.runtime import Runtime
from bot.settings import Settings
from bot.webhooks import flush

SECRET = "current-webhook-secret"
OLD_SECRET = "previous-webhook-secret"


@pytest.fixture
def runtime(tmp_path: Path, redis_url: str, sqlite_db: Database) -> Iterator[Runtime]:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path,
                        webhook_secrets=(SECRET, OLD_SECRET))
    runtime = Runtime(settings, _db=sqlite_db)
    yield runtime


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    app = create_app(runtime=runtime)
    yield app
    # What is still in memory goes to this test's Redis and database now, not the next test's.
    flush(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
