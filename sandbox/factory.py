"""Choosing a backend: Docker, or the local backend when asked for by name."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.base import Sandbox, SandboxUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.environment import BuildProgress, Environment
    from sandbox.packages import PackageAccess

DEFAULT_IMAGE = "davinci-sandbox-base:latest"


class LocalSandboxWarning(UserWarning):
    """Repository code is about to run on this machine with weak isolation."""


def engine_address() -> str:
    """Where the Docker client looks for an engine (`DOCKER_HOST`, else the local socket)."""
    from docker.utils import kwargs_from_env

    return str(kwargs_from_env().get("base_url") or "unix:///var/run/docker.sock")


def no_engine() -> SandboxUnavailable:
    """The refusal when no engine answers: what failed and the two ways on."""
    return SandboxUnavailable(f"no Docker engine answers at {engine_address()}: start it, or "
                              "set DAVINCI_SANDBOX=local to run repository code on this "
                              "machine")


def docker_available() -> bool:
    from sandbox.docker import client

    try:
        client().close()
    except SandboxUnavailable:
        return False
    return True


def choose_backend(requested: str | None) -> str:
    """`docker` unless the local backend was asked for by name (DAVINCI_SANDBOX=local):
    repository code never runs on this machine because an engine happened not to answer.

    Raises :class:`SandboxUnavailable` (see :func:`no_engine`) when docker is meant and no
    engine answers.
    """
    if requested == "local":
        return "local"
    if not docker_available():
        raise no_engine()
    return "docker"


def open_sandbox(repo: Path, commit: str, backend: str = "docker",
                 image: str = DEFAULT_IMAGE, environment: bool = False,
                 install: str | None = None, build_network: str = "auto",
                 access: PackageAccess | None = None,
                 environment_commit: str | None = None, python: str = "auto",
                 as_of: bool = True,
                 on_environment: Callable[[Environment], None] | None = None,
                 on_build: Callable[[BuildProgress], None] | None = None) -> Sandbox:
    """A sandbox of ``repo`` at ``commit``.

    ``environment_commit`` is the commit whose dependency files the environment is built
    from (default ``commit``): a chain's tests need the dependencies of its last merge, and
    those of ``commit`` are installed first (sandbox.environment.ensure_environment).

    With ``environment``, a Docker sandbox runs from the repository's environment image
    (``image`` plus its dependencies, installed by ``install`` or a detected command; built
    once per dependency state, see sandbox.environment), on the base image for the state's
    Python (``python``: `auto` or X.Y); ``on_environment`` hears which image that was and
    why, and ``on_build`` that a build still runs (every few seconds). The local backend
    installs nothing and runs the host's Python.
    """
    if backend == "docker":
        from sandbox.docker import DockerSandbox, client

        engine = client()  # one connection for the environment and the sandbox
        if environment:
            from sandbox.environment import ensure_environment

            found = ensure_environment(repo, environment_commit or commit, install, image,
                                       engine=engine, first=commit, network=build_network,
                                       access=access, python=python, as_of=as_of,
                                       on_build=on_build)
            if on_environment is not None:
                on_environment(found)
            image = found.image
        return DockerSandbox(repo, commit, image, engine=engine)
    if backend == "local":
        from sandbox.local import LocalSandbox

        if environment and install:
            warnings.warn(f"the local sandbox does not run the install command {install!r}: "
                          "the repository's dependencies must already be on this machine",
                          LocalSandboxWarning, stacklevel=2)
        return LocalSandbox(repo, commit)
    raise ValueError(f"unknown sandbox backend {backend!r} (docker or local)")
