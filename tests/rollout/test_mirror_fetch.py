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
from chains.submodules import resolved_url
from sandbox.tree import state_files
from tests.gitrepo import GitRepo


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


def test_submodule_commits_come_along_from_the_same_host_only(tmp_path: Path) -> None:
    """A project whose tests read a suite kept as a submodule beside it (`../suite.git`, as
    tomlkit's toml-test): the worker's mirror fetches the suite's recorded commit, and the
    sandbox's tree holds its files; a submodule on another host is never fetched."""
    shared = tmp_path / "shared" / "octo-org"
    suite = GitRepo.init(tmp_path / "suite", name="suite")
    recorded = suite.commit("Cases", {"cases/add.txt": "2 2 4\n"})
    subprocess.run(["git", "clone", "-q", "--bare", str(suite.path), str(shared / "suite.git")],
                   check=True)
    project = GitRepo.init(tmp_path / "project")
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(suite.path),
                "tests/suite")
    project.git("config", "-f", ".gitmodules", "submodule.tests/suite.url", "../suite.git")
    project.git("update-index", "--add", "--cacheinfo", f"160000,{recorded},elsewhere")
    project.git("config", "-f", ".gitmodules", "submodule.elsewhere.path", "elsewhere")
    project.git("config", "-f", ".gitmodules", "submodule.elsewhere.url",
                "https://elsewhere.example/suite.git")
    project.git("add", ".gitmodules")
    state = project.commit("Calc and its suite", {"calc.py": "X = 1\n"})
    subprocess.run(["git", "clone", "-q", "--bare", str(project.path),
                    str(shared / "widgets.git")], check=True)
    settings = Settings(data_dir=tmp_path / "worker", mirror_url=(tmp_path / "shared").as_uri())
    path = bring_commits(settings, "octo-org/widgets", (state,))
    assert Mirror(path / "modules" / "tests/suite", "").has(recorded)
    assert not (path / "modules" / "elsewhere").exists()
    files = {f.path for f in state_files(path, state)}
    assert "tests/suite/cases/add.txt" in files and "elsewhere" in files  # an empty folder
    assert bring_commits(settings, "octo-org/widgets", (state,)) == path  # nothing to fetch


@pytest.mark.parametrize(("url", "expected"), [
    ("../suite.git", "https://github.com/octo-org/suite.git"),
    ("./sub/x.git", "https://github.com/octo-org/widgets.git/sub/x.git"),
    ("https://github.com/other/suite.git", "https://github.com/other/suite.git"),
    ("https://elsewhere.example/suite.git", None),
    ("http://github.com/other/suite.git", None),
    ("https://user:pw@github.com/other/suite.git", None),
    ("git@github.com:other/suite.git", None),
    ("/srv/git/suite.git", None),
    ("ext::sh -c touch% /tmp/pwned", None),
])
def test_a_submodule_url_is_fetched_only_beside_the_project(url: str,
                                                            expected: str | None) -> None:
    assert resolved_url(url, "https://github.com/octo-org/widgets.git") == expected
    mirrors = "file:///srv/mirrors/octo-org/widgets.git"
    assert resolved_url("../../other/suite.git", mirrors) == "file:///srv/mirrors/other/suite.git"
    assert resolved_url("../../../home/secret.git", mirrors) is None
    assert resolved_url("file:///home/secret.git", mirrors) is None
