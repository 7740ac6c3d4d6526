"""Choosing a backend: Docker when an engine answers, the local backend only when allowed."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.base import Sandbox, SandboxUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.environment import Environment
    from sandbox.packages import PackageAccess

DEFAULT_IMAGE = "davinci-sandbox-base:latest"


class LocalSandboxWarning(UserWarning):
    """Repository code is about to run on this machine with weak isolation."""


def docker_available() -> bool:
    from sandbox.docker import client

    try:
        client().close()
    except SandboxUnavailable:
        return False
    return True


def choose_backend(requested: str | None, allow_local: bool = True) -> str:
    """`docker` or `local`. None means docker when an engine answers.

    Server mode passes ``allow_local=False``: then the local backend is refused unless it was
    asked for by name (DAVINCI_SANDBOX=local).
    """
    if requested == "docker":
        return "docker"
    if requested == "local":
        return "local"
    if docker_available():
        return "docker"
    if not allow_local:
        raise SandboxUnavailable("no Docker engine answers and the local sandbox is not "
                                 "allowed here; start Docker or set DAVINCI_SANDBOX=local")
    warnings.warn("no Docker engine answers: using the LOCAL sandbox, which runs repository "
                  "code on this machine with weak isolation", LocalSandboxWarning, stacklevel=2)
    return "local"


def open_sandbox(repo: Path, commit: str, backend: str = "docker",
                 image: str = DEFAULT_IMAGE, environment: bool = False,
                 install: str | None = None, build_network: str = "auto",
                 access: PackageAccess | None = None,
                 environment_commit: str | None = None, python: str = "auto",
                 as_of: bool = True,
                 on_environment: Callable[[Environment], None] | None = None) -> Sandbox:
    """A sandbox of ``repo`` at ``commit``.

    ``environment_commit`` is the commit whose dependency files the environment is built
    from (default ``commit``): a chain's tests need the dependencies of its last merge, and
    those of ``commit`` are installed first (sandbox.environment.ensure_environment).

    With ``environment``, a Docker sandbox runs from the repository's environment image
    (``image`` plus its dependencies, installed by ``install`` or a detected command; built
    once per dependency state, see sandbox.environment), on the base image for the state's
    Python (``python``: `auto` or X.Y); ``on_environment`` hears which image that was and
    why. The local backend installs nothing and runs the host's Python.
    """
    if backend == "docker":
        from sandbox.docker import DockerSandbox, client

        engine = client()  # one connection for the environment and the sandbox
        if environment:
            from sandbox.environment import ensure_environment

            found = ensure_environment(repo, environment_commit or commit, install, image,
                                       engine=engine, first=commit, network=build_network,
                                       access=access, python=python, as_of=as_of)
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
