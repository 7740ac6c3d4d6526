from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from bot.app import create_app
from bot.db import Database
from bot.models import Delivery, Installation, Repository
from bot.runtime import Runtime
from bot.settings import Settings
from chains.store import ChainRow
from corpus.store import append, record_rejection
from tests.corpus.records import make_record
from tests.states import Arranged, arrange_states

TOKEN = "dashboard-token-for-tests"


@pytest.fixture
def runtime(tmp_path: Path, redis_url: str, sqlite_db: Database) -> Iterator[Runtime]:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path, dashboard_token=TOKEN)
    yield Runtime(settings, _db=sqlite_db)


@pytest.fixture
def populated(runtime: Runtime) -> Runtime:
    with runtime.db.session() as session:
        session.add(Installation(id=11, account_login="textkit-dev", account_type="Organization"))
        session.add(Repository(id=101, full_name="textkit-dev/textkit", installation_id=11))
        session.add(Delivery(id="d-1", event="pull_request", action="closed",
                             repository="textkit-dev/textkit", status="enqueued", payload="{}",
                             job_ids=["mine-textkit-dev-textkit-4"],
                             received_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC)))
        session.add(Delivery(id="d-2", event="push", status="ignored", payload="{}",
                             received_at=datetime(2026, 11, 2, 12, 0, tzinfo=UTC)))
        for seed in range(3):
            append(session, make_record(seed, tool_calls=4 + 2 * seed))
        record_rejection(session, make_record(9), "stage 2 failed")
        session.add(ChainRow(id="1-1-abc", repository="textkit-dev/textkit", prs=[1, 2, 4],
                             kinds=["references", "fixes"], eligible=True))
    return runtime


@pytest.fixture
def app(populated: Runtime) -> Flask:
    return create_app(runtime=populated)


@pytest.fixture
def states(runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Arranged:
    """Chains accepted, not eligible (two ways), retrying (a real failed job), untouched."""
    return arrange_states(runtime, tmp_path, monkeypatch)


@pytest.fixture
def states_app(runtime: Runtime, states: Arranged) -> Flask:
    return create_app(runtime=runtime)
