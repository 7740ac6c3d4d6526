"""Every error a user can cause ends in one or two lines naming the setting or input and
the fix; the traceback only with --debug."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.sample import SampleRepository, build_sample_repository
from tests.conftest import Davinci
from tests.gitrepo import GitRepo
from tests.services import free_port


def short_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command, which must be one or two lines without a traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    return result.stderr


def down_postgres() -> str:
    return f"postgresql://davinci:hunter2@127.0.0.1:{free_port()}/corpus"


@pytest.fixture
def mined(tmp_path: Path, davinci: Davinci) -> tuple[SampleRepository, str]:
    """The sample repository, mined into the test's data folder; and its first chain."""
    sample = build_sample_repository(tmp_path / "textkit")
    assert davinci("mine", "--git", str(sample.path)).returncode == 0
    listed = davinci("chains", "list", "--json")
    return sample, json.loads(listed.stdout)["chains"][0]["id"]


@pytest.mark.parametrize("url", ["nonsense", "mysql://user@host/name", "sqlite+nothing://"])
def test_a_database_url_that_cannot_work_is_a_configuration_error(davinci: Davinci,
                                                                 url: str) -> None:
    result = davinci("chains", "list", DATABASE_URL=url)
    text = short_error(result)
    assert result.returncode == 2
    assert "DATABASE_URL" in text and "postgresql://" in text and "sqlite:///" in text


def test_a_heroku_style_postgres_url_is_read_as_postgresql(davinci: Davinci,
                                                           postgres_url: str) -> None:
    heroku = "postgres://" + postgres_url.split("://", 1)[1]
    result = davinci("chains", "list", DATABASE_URL=heroku)
    assert result.returncode == 0, result.stderr
    assert "no chains yet" in result.stdout


def test_a_postgresql_server_that_is_down_is_two_lines(davinci: Davinci) -> None:
    url = down_postgres()
    text = short_error(davinci("corpus", "stats", DATABASE_URL=url))
    assert url.replace("hunter2", "***") in text and "hunter2" not in text
    assert "DATABASE_URL" in text


def test_debug_shows_the_traceback(davinci: Davinci) -> None:
    result = davinci("--debug", "corpus", "stats", DATABASE_URL=down_postgres())
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "OperationalError" in result.stderr


@pytest.mark.parametrize("args", [["chains", "list"], ["chains", "show", "abc"],
                                  ["corpus", "stats"], ["corpus", "show", "abc"],
                                  ["corpus", "export", "--out", "OUT"]])
def test_read_only_commands_create_no_database(davinci: Davinci, tmp_path: Path,
                                               args: list[str]) -> None:
    target = tmp_path / "nowhere" / "davinci.db"
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    text = short_error(davinci(*args, DATABASE_URL=f"sqlite:///{target}"))
    assert "no database yet" in text and str(target) in text
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "out").exists()
    text = short_error(davinci(*args))  # the data folder's database, the same way
    assert str(tmp_path / "data" / "davinci.db") in text
    assert not (tmp_path / "data").exists()


def test_commands_share_the_configured_database(davinci: Davinci, tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'mine.db'}"
    assert davinci("mine", "--git", str(sample.path), DATABASE_URL=url).returncode == 0
    listed = davinci("chains", "list", DATABASE_URL=url)
    assert listed.returncode == 0 and "#1 -references-> #2" in listed.stdout
    assert "no database yet" in davinci("chains", "list").stderr  # none in the data folder


def test_a_worker_without_redis_says_so_in_two_lines(davinci: Davinci) -> None:
    port = free_port()
    text = short_error(davinci("worker", "--burst", REDIS_URL=f"redis://127.0.0.1:{port}/0"))
    assert text.startswith("the worker cannot start")
    assert f"127.0.0.1:{port}" in text and "REDIS_URL" in text


def test_redeliver_with_github_out_of_reach(davinci: Davinci, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    api = f"http://127.0.0.1:{free_port()}/api"
    text = short_error(davinci("redeliver", GITHUB_APP_ID="1", GITHUB_WEBHOOK_SECRET="s",
                               GITHUB_PRIVATE_KEY_PATH=str(tmp_path / "key.pem"),
                               GITHUB_API_URL=api))
    assert f"GitHub at {api} cannot be reached" in text and "GITHUB_API_URL" in text


def test_an_llm_endpoint_that_does_not_answer(davinci: Davinci,
                                              mined: tuple[SampleRepository, str]) -> None:
    sample, chain = mined
    url = f"http://127.0.0.1:{free_port()}/v1"
    text = short_error(davinci("rollout", "--git", str(sample.path), "--chain", chain,
                               "--policy", "llm", LLM_BASE_URL=url, LLM_MODEL="m"))
    assert f"the LLM endpoint at {url} does not answer" in text and "LLM_BASE_URL" in text


def test_a_replay_rollout_needs_no_model_server(davinci: Davinci,
                                               mined: tuple[SampleRepository, str]) -> None:
    """LLM_* set for the writer and the judge, the server away: the human commits are still
    replayed and verified, without them, and the user is told once."""
    sample, chain = mined
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = davinci("rollout", "--git", str(sample.path), "--chain", chain,
                   LLM_BASE_URL=url, LLM_MODEL="m")
    assert done.returncode == 0, done.stderr
    assert f"chain {chain}: ACCEPTED" in done.stdout and "(replay)" in done.stdout
    assert done.stderr.count(f"model server at {url} does not answer") == 2  # writer, judge
    assert "Traceback" not in done.stderr


def test_corpus_export_into_a_file(davinci: Davinci, tmp_path: Path) -> None:
    target = tmp_path / "corpus.jsonl"
    target.write_text("mine\n")
    text = short_error(davinci("corpus", "export", "--out", str(target)))
    assert f"--out {target} is a file" in text
    assert target.read_text() == "mine\n"


def test_rollout_of_a_folder_that_is_no_clone(davinci: Davinci, tmp_path: Path,
                                              mined: tuple[SampleRepository, str]) -> None:
    (tmp_path / "plain").mkdir()
    text = short_error(davinci("rollout", "--git", str(tmp_path / "plain"), "--chain",
                               mined[1]))
    assert f"--git {tmp_path / 'plain'} is not a git clone" in text


def test_rollout_from_the_wrong_clone(davinci: Davinci, tmp_path: Path,
                                      mined: tuple[SampleRepository, str]) -> None:
    other = GitRepo.init(tmp_path / "other")
    other.commit("Initial commit", {"README.md": "# other\n"})
    sample, chain = mined
    text = short_error(davinci("rollout", "--git", str(other.path), "--chain", chain))
    assert f"--git {other.path} does not hold commit {sample.merge_commits[1][:12]}" in text
    assert "PR #1" in text


def test_no_docker_engine_is_a_refusal_not_a_fallback(davinci: Davinci, tmp_path: Path,
                                                      mined: tuple[SampleRepository, str]
                                                      ) -> None:
    sample, chain = mined
    address = f"tcp://127.0.0.1:{free_port()}"
    text = short_error(davinci("rollout", "--git", str(sample.path), "--chain", chain,
                               DOCKER_HOST=address, DAVINCI_SANDBOX=None))
    assert f"no Docker engine answers at {address}" in text
    assert "DAVINCI_SANDBOX=local" in text
    assert not (tmp_path / "data" / "journals").exists()  # no rollout ran anywhere
