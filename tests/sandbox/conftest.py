"""Sandboxes of both backends over a real git repository."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from bot.sample import SampleRepository, build_sample_repository
from bot.settings import Settings
from sandbox.base import Sandbox
from sandbox.factory import DEFAULT_IMAGE, docker_available, open_sandbox
from sandbox.packages import PackageAccess, build_network

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleRepository:
    return build_sample_repository(tmp_path_factory.mktemp("sandbox") / "textkit")


@pytest.fixture(scope="session")
def docker_ready() -> bool:
    if docker_available():
        return True
    if IN_CI:
        raise RuntimeError("CI must have a Docker engine (scripts/docker-up.sh starts one)")
    return False


@pytest.fixture(params=["docker", "local"])
def backend(request: pytest.FixtureRequest, docker_ready: bool) -> str:
    if request.param == "docker" and not docker_ready:
        pytest.skip("no Docker engine answers here (CI always has one)")
    return str(request.param)


@pytest.fixture
def box(backend: str, sample: SampleRepository) -> Iterator[Sandbox]:
    with open_sandbox(sample.path, sample.merge_commits[2], backend, DEFAULT_IMAGE) as sandbox:
        yield sandbox


@pytest.fixture
def docker_box(docker_ready: bool, sample: SampleRepository) -> Iterator[Sandbox]:
    if not docker_ready:
        pytest.skip("no Docker engine answers here (CI always has one)")
    with open_sandbox(sample.path, sample.merge_commits[2], "docker") as sandbox:
        yield sandbox


@pytest.fixture
def engine(docker_ready: bool) -> Iterator[docker.DockerClient]:
    """The Docker engine; environment images a test builds are removed after it."""
    if not docker_ready:
        pytest.skip("no Docker engine answers here (CI always has one)")
    client = docker.from_env()
    before = {image.id for image in client.images.list(filters={"label": "davinci.env=1"})}
    yield client
    for image in client.images.list(filters={"label": "davinci.env=1"}):
        if image.id not in before:
            client.images.remove(image.id, force=True)
    client.close()


@pytest.fixture
def index_access(engine: docker.DockerClient) -> PackageAccess:
    """How this machine reaches the package index, for builds that need real packages;
    skipped, with the reason, where no index answers from a build container."""
    access = Settings.from_env().package_access()
    chosen = build_network(engine, DEFAULT_IMAGE, access)
    if not chosen.reachable:
        pytest.skip(f"no package index answers from a build container here: {chosen.detail}")
    return access


def git_available() -> bool:
    return shutil.which("git") is not None


__all__ = ["Path"]
