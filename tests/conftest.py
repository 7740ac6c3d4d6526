"""Shared fixtures: real Redis, real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import text

from bot.db import Database
from tests.services import RedisServer, postgres_server

IN_CI = os.environ.get("CI") == "true"

# No test writes into the user's data directory or a database the developer configured:
# settings read in tests (and the commands tests start) default to a scratch folder.
_SCRATCH = tempfile.mkdtemp(prefix="davinci-tests-")
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
os.environ["XDG_DATA_HOME"] = _SCRATCH
for _name in ("DAVINCI_DATA_DIR", "DATABASE_URL"):
    os.environ.pop(_name, None)
# The GitHub of the tests is a simulator on this machine: no second's pause between writes and
# no waiting for the next minute's budget of comments (tests/github/test_pacing.py checks the
# pacing GitHub gets).
os.environ["DAVINCI_GITHUB_WRITE_PAUSE"] = "0"
os.environ["DAVINCI_GITHUB_WRITES_PER_MINUTE"] = "100000"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean Redis database for one test."""
    if redis_server.process is None:  # a test stopped it to simulate an outage
        redis_server.start()
    client = Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session; skipped off CI when none can be started."""
    try:
        with postgres_server() as url:
            yield url
    except (RuntimeError, OSError) as exc:
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL could not be started here: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same test on SQLite (WAL file) and on PostgreSQL, each with a fresh schema."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'davinci.db'}")
    else:
        url = request.getfixturevalue("postgres_url")
        db = Database(url)
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    db.create_schema()
    yield db
    db.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'davinci.db'}")
    db.create_schema()
    yield db
    db.dispose()


Davinci = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def davinci(tmp_path: Path) -> Davinci:
    """Run `davinci ARGS` as a user would, with a data folder of the test's own and the
    given environment variables (None removes one); returns the finished process."""

    def run(*args: str, **variables: str | None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data")}
        for name, value in variables.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True,
                              text=True, env=env, timeout=600)

    return run
