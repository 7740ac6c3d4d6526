"""A real project's history, end to end: marshmallow up to January 2017 (a git bundle in
`tests/data`), its chain #572 -> #575 mined, its environment built on the Python the state
declares with the packages of its time, validated, and replayed to an accepted trajectory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from bot.settings import Settings
from sandbox.factory import DEFAULT_IMAGE, docker_available
from sandbox.interpreters import base_images
from sandbox.packages import build_network

BUNDLE = Path(__file__).parent / "data" / "marshmallow-2017.bundle"


def davinci(env: dict[str, str], *args: str, timeout: float = 900) -> dict:
    done = subprocess.run([sys.executable, "-m", "bot", *args, "--json"], capture_output=True,
                          text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_a_real_chain_becomes_a_verified_trajectory(tmp_path: Path) -> None:
    if not docker_available():
        pytest.skip("no Docker engine answers here (CI always has one)")
    engine = docker.from_env()
    if "3.9" not in base_images(engine, DEFAULT_IMAGE):
        pytest.skip("no Python 3.9 base image; scripts/docker-up.sh builds it, as CI does")
    chosen = build_network(engine, DEFAULT_IMAGE, Settings.from_env().package_access())
    if not chosen.reachable:
        pytest.skip(f"no package index answers from a build container here: {chosen.detail}")
    clone = tmp_path / "marshmallow"
    subprocess.run(["git", "clone", "-q", "-b", "bundle-575", str(BUNDLE), str(clone)],
                   check=True, capture_output=True)
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)

    mined = davinci(env, "mine", "--git", str(clone))
    assert mined["pull_requests"] >= 70
    chain = next(c for c in mined["chains"] if c["prs"] == [572, 575])
    verdict = davinci(env, "rollout", "--git", str(clone), "--chain", chain["id"])
    assert verdict["accepted"], verdict["reason"]
    assert [s["verdict"] for s in verdict["stages"]] == ["passed", "passed"]

    from bot.runtime import Runtime
    from rollout.store import ValidationRow

    runtime = Runtime(Settings.from_env(env))
    try:
        with runtime.db.session() as session:
            row = session.query(ValidationRow).filter_by(chain_id=chain["id"]).one()
            validation = row.result
    finally:
        runtime.close()
    assert validation["python"].startswith("3.9."), validation["environment"]
    assert "setup.py classifiers" in validation["environment"]
