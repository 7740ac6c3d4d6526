"""Stable defaults, quiet and uniform logs, build progress a caller can show."""

from __future__ import annotations

import io
import json
import logging
import threading
from pathlib import Path

from bot.logs import configure_logging
from bot.runtime import Runtime
from bot.settings import Settings
from bot.worker import run_worker
from sandbox.environment import BuildProgress, reporting


def test_the_data_folder_follows_xdg_wherever_a_command_starts(tmp_path: Path) -> None:
    assert Settings.from_env({"XDG_DATA_HOME": str(tmp_path)}).data_dir == \
        tmp_path / "davinci-agency"
    home = Settings.from_env({"HOME": str(tmp_path / "home")}).data_dir
    assert home.parts[-3:] == (".local", "share", "davinci-agency") and home.is_absolute()
    # A relative XDG_DATA_HOME is invalid by the specification and ignored.
    assert Settings.from_env({"XDG_DATA_HOME": "rel"}).data_dir.is_absolute()
    chosen = Settings.from_env({"DAVINCI_DATA_DIR": str(tmp_path / "d"),
                                "XDG_DATA_HOME": str(tmp_path)})
    assert chosen.effective_database_url == f"sqlite:///{tmp_path / 'd' / 'davinci.db'}"


def test_heroku_style_database_urls_are_read_as_postgresql() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgres://u:p@db.example:5432/name"})
    assert settings.effective_database_url == "postgresql://u:p@db.example:5432/name"


def worker_lines(redis_url: str, tmp_path: Path, log_format: str, level: str) -> list[str]:
    """What `davinci worker --burst` logs, on a real Redis."""
    stream = io.StringIO()
    configure_logging(log_format, level, stream=stream)
    runtime = Runtime(Settings(redis_url=redis_url, data_dir=tmp_path))
    try:
        run_worker(runtime, ("davinci-mining",), burst=True)
    finally:
        runtime.close()
        configure_logging("console", "warning")
    return stream.getvalue().splitlines()


def test_rq_logs_in_the_configured_format(redis_url: str, tmp_path: Path) -> None:
    lines = worker_lines(redis_url, tmp_path, "json", "info")
    assert lines, "an rq worker logs that it starts and stops"
    records = [json.loads(line) for line in lines]  # every line: one JSON object
    assert {record["logger"] for record in records} >= {"rq.worker"}
    assert all("level" in record and "timestamp" in record for record in records)


def test_logs_are_quiet_by_default(redis_url: str, tmp_path: Path) -> None:
    assert worker_lines(redis_url, tmp_path, "console", "warning") == []
    assert logging.getLogger().level == logging.WARNING


def test_a_running_build_reports_its_elapsed_time() -> None:
    heard: list[BuildProgress] = []
    enough = threading.Event()

    def hear(progress: BuildProgress) -> None:
        heard.append(progress)
        if len(heard) >= 3:
            enough.set()

    with reporting("davinci-env-x:1", hear, every=0.01):
        assert enough.wait(60)
    count = len(heard)
    assert heard[0].elapsed == 0.0 and heard[0].describe() == \
        "building the environment davinci-env-x:1 … 0s"
    assert [p.elapsed for p in heard] == sorted(p.elapsed for p in heard)
    assert len(heard) == count, "no report after the build ended"
    assert BuildProgress("i", 130.4).describe().endswith("… 2m10s")
