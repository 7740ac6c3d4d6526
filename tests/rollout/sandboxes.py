"""The sandbox the rollout tests run on: Docker where an engine answers (always in CI), the
local backend elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.base import Sandbox
from sandbox.factory import docker_available
from sandbox.factory import open_sandbox as open_backend

BACKEND = "docker" if os.environ.get("CI") == "true" or docker_available() else "local"


def open_sandbox(repo: Path, commit: str) -> Sandbox:
    return open_backend(repo, commit, BACKEND)
