"""Settings, logging redaction and storage on both databases."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text

from bot.db import Database
from bot.logs import REDACTED, configure_logging, get_logger
from bot.models import Delivery, Installation
from bot.settings import LLMEndpoint, Settings, SettingsError


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("/.local/share/davinci-agency/davinci.db")
    assert settings.sandbox is None and settings.llm_base_url is None


def test_server_mode_names_every_missing_variable() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"GITHUB_APP_ID": "1"}).require_github_app()
    assert "GITHUB_PRIVATE_KEY" in str(error.value)
    assert "GITHUB_WEBHOOK_SECRET" in str(error.value)
    assert "GITHUB_APP_ID" not in str(error.value)


def test_private_key_that_is_not_pem_is_named(tmp_path) -> None:
    with pytest.raises(SettingsError, match="GITHUB_PRIVATE_KEY does not hold a PEM"):
        Settings.from_env({"GITHUB_PRIVATE_KEY": "not a key"})
    bad = tmp_path / "key.pem"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\ngarbage\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(SettingsError, match="GITHUB_PRIVATE_KEY_PATH"):
        Settings.from_env({"GITHUB_PRIVATE_KEY_PATH": str(bad)})
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_env({"GITHUB_PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")})


def test_private_key_with_flattened_newlines_and_rotated_secrets(pem: str) -> None:
    settings = Settings.from_env({
        "GITHUB_APP_ID": "42",
        "GITHUB_PRIVATE_KEY": pem.replace("\n", "\\n"),
        "GITHUB_WEBHOOK_SECRET": "new-secret, old-secret",
    }).require_github_app()
    assert settings.webhook_secrets == ("new-secret", "old-secret")
    assert settings.github_private_key is not None
    assert settings.github_private_key.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert "new-secret" not in repr(settings)


def test_judge_and_writer_default_to_the_agents_llm() -> None:
    settings = Settings.from_env({"LLM_BASE_URL": "http://llm:8000/v1", "LLM_MODEL": "agent",
                                  "LLM_API_KEY": "sk-agent"})
    agent = settings.agent_llm()
    assert agent == LLMEndpoint("http://llm:8000/v1", "agent", "sk-agent")
    assert settings.judge_llm() == agent and settings.writer_llm() == agent
    assert Settings.from_env({}).judge_llm() is None
    assert Settings.from_env({}).writer_llm() is None


def test_a_separate_judge_gets_its_own_key_and_never_the_agents() -> None:
    env = {"LLM_BASE_URL": "http://llm:8000/v1", "LLM_MODEL": "agent", "LLM_API_KEY": "sk-agent",
           "LLM_WRITER_MODEL": "writer", "LLM_JUDGE_MODEL": "judge"}
    same_host = Settings.from_env(env)
    assert same_host.judge_llm() == LLMEndpoint("http://llm:8000/v1", "judge", "sk-agent")
    assert same_host.writer_llm() == LLMEndpoint("http://llm:8000/v1", "writer", "sk-agent")

    elsewhere = Settings.from_env({**env, "LLM_JUDGE_BASE_URL": "https://judge.example/v1/"})
    assert elsewhere.judge_llm() == LLMEndpoint("https://judge.example/v1", "judge", None)

    keyed = Settings.from_env({**env, "LLM_JUDGE_BASE_URL": "https://judge.example/v1",
                               "LLM_JUDGE_API_KEY": "sk-judge"})
    assert keyed.judge_llm() == LLMEndpoint("https://judge.example/v1", "judge", "sk-judge")
    assert "sk-judge" in keyed.secrets
    assert "sk-judge" not in repr(keyed) and "sk-judge" not in repr(keyed.judge_llm())


@pytest.mark.parametrize("env,name", [
    ({"LLM_JUDGE_BASE_URL": "judge.example/v1", "LLM_JUDGE_MODEL": "j"}, "LLM_JUDGE_BASE_URL"),
    ({"LLM_JUDGE_MODEL": "judge"}, "LLM_JUDGE_"),
    ({"LLM_JUDGE_BASE_URL": "http://judge:8000/v1"}, "LLM_JUDGE_"),
    ({"LLM_MODEL": "agent", "LLM_WRITER_MODEL": "writer"}, "LLM_WRITER_MODEL"),
])
def test_an_llm_role_that_would_switch_nothing_on_is_named(env: dict[str, str],
                                                           name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


@pytest.mark.parametrize("name,value", [
    ("REDIS_URL", "localhost:6379"),
    ("GITHUB_API_URL", "api.github.com"),
    ("DAVINCI_SANDBOX", "vm"),
    ("DAVINCI_LOG_FORMAT", "xml"),
    ("DAVINCI_ABANDONED_AFTER", "soon"),
    ("DAVINCI_ABANDONED_AFTER", "1"),
    ("LLM_TEMPERATURE", "hot"),
    ("LLM_TEMPERATURE", "3"),
    ("LLM_MAX_TOKENS", "0"),
    ("LLM_MAX_TOKENS", "8192.5"),
    ("LLM_CONTEXT_WINDOW", "32k"),
    ("DAVINCI_MAX_STEPS", "many"),
    ("DAVINCI_MAX_ATTEMPTS", "2.5"),
    ("DAVINCI_THRESHOLD", "1.5"),
])
def test_malformed_values_are_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_model_and_rollout_settings_from_the_environment() -> None:
    settings = Settings.from_env({"LLM_TEMPERATURE": "0.7", "LLM_MAX_TOKENS": "16384",
                                  "LLM_CONTEXT_WINDOW": "32768", "DAVINCI_MAX_STEPS": "300",
                                  "DAVINCI_THRESHOLD": "0.9"})
    assert (settings.llm_temperature, settings.llm_max_tokens,
            settings.llm_context_window) == (0.7, 16384, 32768)
    assert dict(settings.rollout_limits) == {"max_steps": 300, "threshold": 0.9}
    assert Settings.from_env({}).llm_context_window is None


def test_json_logs_redact_known_secrets_and_token_shapes(pem: str) -> None:
    stream = io.StringIO()
    configure_logging("json", "info", secrets=["hunter2-webhook-secret", pem], stream=stream)
    get_logger(delivery="d-1").info(
        "auth", header="Authorization: token ghs_" + "a" * 36, secret="plain",
        note="secret is hunter2-webhook-secret", key=pem, nested={"api_key": "sk-x"})
    line = json.loads(stream.getvalue().strip())
    assert line["delivery"] == "d-1" and line["event"] == "auth"
    assert line["secret"] == REDACTED
    assert "ghs_" not in line["header"]
    assert line["note"] == f"secret is {REDACTED}"
    assert "PRIVATE KEY" not in json.dumps(line)
    assert line["nested"] == {"api_key": REDACTED}


def test_console_logs_are_readable_lines() -> None:
    stream = io.StringIO()
    configure_logging("console", "info", stream=stream)
    get_logger(repo="o/r").info("mined", prs=3)
    output = stream.getvalue()
    assert "mined" in output and "repo=o/r" in output and not output.startswith("{")


def test_storage_round_trip(database: Database) -> None:
    with database.session() as session:
        session.add(Installation(id=7, account_login="octo-org", account_type="Organization"))
        session.add(Delivery(id="guid-1", event="ping", payload="{}", job_ids=["a", "b"]))
    with database.session() as session:
        delivery = session.get(Delivery, "guid-1")
        assert delivery is not None and delivery.job_ids == ["a", "b"]
        assert delivery.status == "pending"
        assert session.scalars(select(Installation.account_login)).all() == ["octo-org"]


def test_processes_starting_together_on_a_new_database_all_get_the_schema(
        database: Database) -> None:
    """Several workers on several machines may start at once against an empty database."""
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    if database.dialect == "sqlite":
        database.dispose()
        path = database.url.split(":///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    code = "import sys; from bot.db import Database; Database(sys.argv[1]).create_schema()"
    starters = [subprocess.Popen([sys.executable, "-c", code, database.url],
                                 stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for process in starters:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
    with database.session() as session:
        session.add(Delivery(id="after", event="ping", payload="{}"))


def test_sqlite_runs_in_wal_mode_and_reads_through_a_memory_map(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA mmap_size")).scalar() == 1 << 30


def test_cli_help_lists_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True,
                            text=True, check=True)
    assert "serve" in result.stdout and "worker" in result.stdout


def test_cli_reports_bad_configuration_clearly() -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "serve"], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "REDIS_URL": "nope"})
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
