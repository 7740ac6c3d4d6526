"""`davinci sandbox gc` removes what crashed processes left and spares what live ones use."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import docker
import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.sample import SampleRepository
from sandbox.docker import LABEL, OWNER_LABEL
from sandbox.factory import DEFAULT_IMAGE, open_sandbox


@pytest.fixture
def engine(docker_ready: bool) -> Iterator[docker.DockerClient]:
    if not docker_ready:
        pytest.skip("no Docker engine answers here (CI always has one)")
    client = docker.from_env()
    yield client
    client.close()


def leftover(engine: docker.DockerClient, owner: str | None, age: float = 0) -> str:
    """A stopped container as a sandbox of ``owner`` (host:pid) would leave it."""
    labels = {LABEL: "1", "davinci.created": str(int(time.time() - age))}
    if owner is not None:
        labels[OWNER_LABEL] = owner
    return str(engine.containers.create(DEFAULT_IMAGE, command=["true"], labels=labels).id)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def exists(engine: docker.DockerClient, container_id: str) -> bool:
    try:
        engine.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


def test_gc_removes_orphans_and_keeps_live_sandboxes(engine: docker.DockerClient,
                                                    sample: SampleRepository) -> None:
    host = socket.gethostname()
    crashed = leftover(engine, f"{host}:{dead_pid()}")
    unlabelled = leftover(engine, None)
    elsewhere = leftover(engine, "another-host:4242", age=7200)
    runner = CliRunner()
    with open_sandbox(sample.path, sample.merge_commits[1], "docker", DEFAULT_IMAGE) as box:
        live = box.container.id
        result = runner.invoke(main, ["sandbox", "gc"])
        assert result.exit_code == 0, result.output
        assert "in use by live processes" in result.output
        assert exists(engine, live) and exists(engine, elsewhere)
        assert not exists(engine, crashed) and not exists(engine, unlabelled)
        assert box.exec("echo still working").stdout.strip() == "still working"

        aged = runner.invoke(main, ["sandbox", "gc", "--older-than", "3600"])
        assert aged.exit_code == 0 and not exists(engine, elsewhere), \
            "another host's sandbox goes once it is old"
        assert exists(engine, live), "a live process's sandbox stays, however old"

        everything = runner.invoke(main, ["sandbox", "gc", "--all"])
        assert everything.exit_code == 0 and not exists(engine, live)
