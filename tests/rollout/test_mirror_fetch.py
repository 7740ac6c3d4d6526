"""A worker without the repository on its disk brings the chain's commits into a mirror of its
own: from DAVINCI_MIRROR_URL when GitHub is not the source (offline clones)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.jobs.rollouts import bring_commits
from bot.pipeline import PipelineError
from bot.sample import build_sample_repository
from bot.settings import Settings
from chains.mirror import Mirror


def test_commits_come_from_the_shared_mirror_url(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "clone")
    shared = tmp_path / "shared"
    subprocess.run(["git", "clone", "-q", "--bare", str(sample.path),
                    str(shared / "textkit-dev" / "textkit.git")], check=True)
    wanted = tuple(sample.merge_commits[n] for n in (1, 2, 4))
    settings = Settings(data_dir=tmp_path / "worker", mirror_url=shared.as_uri())
    path = bring_commits(settings, sample.full_name, wanted)
    assert path == Mirror.at(settings.data_dir, sample.full_name, "").path
    mirror = Mirror(path, "")
    assert all(mirror.has(sha) for sha in wanted)
    again = bring_commits(settings, sample.full_name, wanted)  # already there: no fetch
    assert again == path


def test_without_a_source_the_worker_says_what_to_set(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "clone")
    settings = Settings(data_dir=tmp_path / "worker")
    with pytest.raises(PipelineError, match="DAVINCI_MIRROR_URL"):
        bring_commits(settings, sample.full_name, (sample.merge_commits[1],))
