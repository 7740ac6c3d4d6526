"""Mining real git histories into links and chains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db import Database
from bot.sample import SampleRepository, build_sample_repository
from chains.config import RepoConfig
from chains.gitsource import GitBlame, GitHistory, GitSourceError
from chains.mining import attach_pull_request
from chains.queries import all_links, chain_rows
from tests.gitrepo import GitRepo

SLUG_FIX = ("fix changes 1 code line of #2 (100% of the code lines it changes) in "
            "textkit/slug.py (git blame); it works on max_length, slug, which #2 brought in")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleRepository:
    return build_sample_repository(tmp_path_factory.mktemp("sample") / "textkit")


def mine(db: Database, path: Path, ref: str = "HEAD",
         config: RepoConfig | None = None) -> GitHistory:
    history = GitHistory(path, repository="textkit-dev/textkit", ref=ref)
    for pr in history.pull_requests():
        with db.session() as session:
            attach_pull_request(session, pr, GitBlame(path), config)
    return history


def chains_of(db: Database) -> list[tuple[list[int], list[str], bool]]:
    with db.session() as session:
        return sorted((list(r.prs), list(r.kinds), r.eligible) for r in chain_rows(session))


def test_sample_history_gives_exactly_the_expected_chains(database: Database,
                                                          sample: SampleRepository) -> None:
    mine(database, sample.path)
    assert chains_of(database) == [
        ([1, 2, 4], ["references", "fixes"], True),
        ([3, 5, 6], ["shares_issue", "references"], True),
    ]
    with database.session() as session:
        links = {(k["from"], k["to"], k["kind"]): k["evidence"]
                 for k in all_links(session, "textkit-dev/textkit")}
    assert "Follow-up to #1" in links[(1, 2, "references")]
    assert links[(2, 4, "fixes")] == SLUG_FIX
    assert links[(3, 5, "shares_issue")] == "both close #20"
    assert "Follow-up to #5" in links[(5, 6, "references")]
    assert not any(7 in key[:2] for key in links), "the docs PR links to nothing"


def test_the_fix_is_found_only_by_blame(sample: SampleRepository) -> None:
    history = GitHistory(sample.path)
    fix = next(pr for pr in history.pull_requests() if pr.number == 4)
    from chains.text import mentions

    text = "\n".join([fix.title, fix.body, *(c.message for c in fix.commits)])
    assert [m.number for m in mentions(text, history.repository)] == [4]


def test_remining_changes_nothing(sqlite_db: Database, sample: SampleRepository) -> None:
    mine(sqlite_db, sample.path)
    before = chains_of(sqlite_db)
    with sqlite_db.session() as session:
        links_before = all_links(session, "textkit-dev/textkit")
    mine(sqlite_db, sample.path)
    assert chains_of(sqlite_db) == before
    with sqlite_db.session() as session:
        assert all_links(session, "textkit-dev/textkit") == links_before


def test_incremental_equals_batch(tmp_path: Path, sample: SampleRepository) -> None:
    batch = Database(f"sqlite:///{tmp_path / 'batch.db'}")
    batch.create_schema()
    mine(batch, sample.path)
    incremental = Database(f"sqlite:///{tmp_path / 'inc.db'}")
    incremental.create_schema()
    for number in (1, 3, 2, 5, 4, 6, 7):  # the order GitHub merged them
        mine(incremental, sample.path, ref=sample.merge_commits[number])
    assert chains_of(incremental) == chains_of(batch)


def test_a_second_follow_up_of_the_same_pr_forks_a_new_path(sqlite_db: Database,
                                                            tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "fork", owner="textkit-dev", name="textkit")
    repo.commit("init", {"a.py": "A = 1\n"})
    repo.pull_request(1, "Add b", {"b.py": "B = 1\n", "tests/test_b.py": "def test(): pass\n"})
    repo.pull_request(2, "Follow-up to #1: c", {"c.py": "C = 1\n",
                                                 "tests/test_c.py": "def test(): pass\n"},
                      squash=True)
    repo.pull_request(3, "Follow-up to #1: d", {"d.py": "D = 1\n"}, squash=True)
    mine(sqlite_db, repo.path)
    # [1, 3] is a chain, but only #1 changes tests: one stage could be verified, not two.
    assert chains_of(sqlite_db) == [([1, 2], ["references"], True),
                                    ([1, 3], ["references"], False)]


def test_touching_the_same_files_alone_makes_no_chain(sqlite_db: Database,
                                                      tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "area", owner="textkit-dev", name="textkit")
    repo.commit("init", {"a.py": "A = 1\n"})
    repo.pull_request(1, "Add parser", {"parse.py": "P = 1\n",
                                        "tests/test_p.py": "def test(): pass\n"}, squash=True)
    repo.pull_request(2, "Speed up startup", {"parse.py": "P = 2\n"}, squash=True)
    mine(sqlite_db, repo.path)
    with sqlite_db.session() as session:
        kinds = {(k["from"], k["to"], k["kind"]) for k in all_links(session, "textkit-dev/textkit")}
    assert kinds == {(1, 2, "same_area")}, "the overlap is recorded as evidence"
    assert chains_of(sqlite_db) == [], "but it does not make a chain by itself"


def test_the_same_area_breaks_a_tie_between_equally_strong_links(sqlite_db: Database,
                                                                  tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "tie", owner="textkit-dev", name="textkit")
    repo.commit("init", {"a.py": "A = 1\n"})
    repo.pull_request(1, "Add lexer", {"lex.py": "L = 1\n",
                                       "tests/test_l.py": "def test(): pass\n"}, squash=True)
    repo.pull_request(2, "Add printer", {"out.py": "O = 1\n"}, squash=True)
    repo.pull_request(3, "Follow-up to #1 and #2: faster lexing",
                      {"lex.py": "L = 2\n", "tests/test_l.py": "def test(): assert 1\n"},
                      squash=True)
    mine(sqlite_db, repo.path)
    assert chains_of(sqlite_db) == [([1, 3], ["references"], True)], \
        "both are named; #1 also touched lex.py, so #3 continues #1 (not the more recent #2)"


def test_a_fix_links_to_the_pr_whose_code_it_repairs_not_to_docs_or_a_sweep(
        sqlite_db: Database, tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "sweep", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    repo.pull_request(1, "Add slugify", {"slug.py": "def slug(t):\n    a = t.lower()\n"
                                         "    b = a.strip()\n    c = b.replace(' ', '-')\n"
                                         "    return c\n",
                                         "tests/test_slug.py": "def test(): pass\n"},
                      squash=True)
    for n, name in ((2, "pad"), (3, "trim"), (4, "wrap")):
        repo.pull_request(n, f"Add {name}", {f"{name}.py": f"def {name}(t):\n    return t\n",
                                             "docs/usage.rst": f"Usage {n}\n"}, squash=True)
    # One fix: most of it repairs #1's slug; one line each of #2 and #3, and #4's docs line.
    repo.pull_request(5, "Fix slugify for mixed case", {
        "slug.py": "def slug(t):\n    a = t.casefold()\n    b = a.strip(' -')\n"
                   "    c = b.replace(' ', '_')\n    return c\n",
        "pad.py": "def pad(t):\n    return t or ''\n",
        "trim.py": "def trim(t):\n    return t or ''\n",
        "docs/usage.rst": "Usage, fixed\n",
        "tests/test_slug.py": "def test(): assert 1\n"}, squash=True)
    mine(sqlite_db, repo.path)
    with sqlite_db.session() as session:
        fixes = {(k["from"], k["to"]) for k in all_links(session, "textkit-dev/textkit")
                 if k["kind"] == "fixes"}
    assert fixes == {(1, 5)}, "3 of the 5 blamed code lines are #1's; docs never count"
    assert ([1, 5], ["fixes"], True) in chains_of(sqlite_db)


def test_a_sweep_of_one_line_each_in_many_prs_is_no_fix_of_any(sqlite_db: Database,
                                                               tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "typos", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README": "kit\n"})
    for n in range(1, 6):
        repo.pull_request(n, f"Add helper {n}", {f"h{n}.py": f"# helpr {n}\nH = {n}\n"},
                          squash=True)
    repo.pull_request(6, "Fix typos", {**{f"h{n}.py": f"# helper {n}\nH = {n}\n"
                                          for n in range(1, 6)}, "README": "Kit\n"},
                      squash=True)
    mine(sqlite_db, repo.path)
    with sqlite_db.session() as session:
        kinds = {k["kind"] for k in all_links(session, "textkit-dev/textkit") if k["to"] == 6}
    assert "fixes" not in kinds


def test_chain_length_is_capped(sqlite_db: Database, tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "long", owner="textkit-dev", name="textkit")
    repo.commit("init", {"a.py": "A = 0\n"})
    repo.pull_request(1, "Start", {"tests/test_a.py": "def test(): pass\n"}, squash=True)
    for n in range(2, 6):
        repo.pull_request(n, f"Follow-up to #{n - 1}", {f"m{n}.py": "X = 1\n"}, squash=True)
    mine(sqlite_db, repo.path, config=RepoConfig(max_chain_length=3))
    chains = [prs for prs, _, _ in chains_of(sqlite_db)]
    assert max(len(prs) for prs in chains) == 3
    assert [1, 2, 3] in chains and chains[-1][-1] == 5


def test_binary_and_renamed_files_are_read(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "files")
    repo.commit("init", {"src/old.py": "A = 1\nB = 2\n"})
    repo.branch("pr-8")
    repo.rename("src/old.py", "src/new.py")
    repo.commit("rename and logo", {"logo.png": b"\x89PNG\x00\x01", "src/new.py": "A = 1\nB = 3\n"})
    repo.merge_pr("pr-8", 8, "Rename module")
    [pr] = GitHistory(repo.path).pull_requests()
    files = {f.path: f for f in pr.files}
    assert files["logo.png"].binary and files["logo.png"].status == "added"
    renamed = files["src/new.py"]
    assert (renamed.status, renamed.old_path) == ("renamed", "src/old.py")
    assert [(r.start, r.end) for r in renamed.old_ranges] == [(2, 2)]


def test_separator_bytes_in_messages_and_diffs_do_not_stop_mining(tmp_path: Path) -> None:
    """A text file holding the record and field separator bytes (a real repository had a
    `\x1e` in an `.ai` file) and a commit message with them are mined like any other."""
    repo = GitRepo.init(tmp_path / "separators")
    repo.commit("init", {"art/logo.ai": "%!PS\nheader\n"})
    repo.branch("pr-3")
    repo.commit("Odd \x1e bytes \x1f in a message", {"art/logo.ai": "%!PS\n\x1e\x1f art\n",
                                                       "src/a.py": "A = 1\n"})
    repo.merge_pr("pr-3", 3, "Update the logo")
    repo.pull_request(4, "Add b", {"src/b.py": "B = 2\n"})
    prs = GitHistory(repo.path).pull_requests()
    assert [pr.number for pr in prs] == [3, 4]
    assert {f.path for f in prs[0].files} == {"art/logo.ai", "src/a.py"}
    assert "Odd" in prs[0].commits[0].message


def test_since_and_limit_pick_the_latest_prs(tmp_path: Path, sample: SampleRepository) -> None:
    everything = GitHistory(sample.path).pull_requests()
    order = [pr.number for pr in everything]
    assert [pr.number for pr in GitHistory(sample.path).pull_requests(limit=3)] == order[-3:]
    assert GitHistory(sample.path).pull_requests(limit=0) == []
    cut = everything[3].merged_at
    assert cut is not None
    since = [pr.number for pr in GitHistory(sample.path).pull_requests(since=cut)]
    assert since == order[3:]
    result = run_cli("mine", "--git", str(sample.path), "--limit", "2", "--json",
                     data_dir=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["pull_requests"] == 2


def test_clear_errors_for_paths_that_cannot_be_mined(tmp_path: Path) -> None:
    with pytest.raises(GitSourceError, match="does not exist"):
        GitHistory(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitSourceError, match="not a git repository"):
        GitHistory(tmp_path / "plain")
    GitRepo.init(tmp_path / "empty")
    with pytest.raises(GitSourceError, match="no commits yet"):
        GitHistory(tmp_path / "empty")
    repo = GitRepo.init(tmp_path / "nopr")
    repo.commit("just a commit", {"a.txt": "a\n"})
    assert GitHistory(repo.path).pull_requests() == []


def test_a_clone_missing_objects_says_what_to_do(tmp_path: Path) -> None:
    """A partial or damaged clone lacks a blob an old diff needs: mining stops with git's
    words and what to do, not a bare failure."""
    repo = GitRepo.init(tmp_path / "partial")
    repo.commit("init", {"a.py": "A = 1\n"})
    repo.pull_request(2, "Change a", {"a.py": "A = 2\n"}, squash=True)
    blob = repo.git("rev-parse", "HEAD~1:a.py").strip()
    (repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    with pytest.raises(GitSourceError, match=r"(?s)unable to read.*mine a full clone"):
        GitHistory(repo.path).pull_requests()


def test_a_shallow_clone_skips_prs_whose_base_is_gone(sqlite_db: Database, tmp_path: Path,
                                                       sample: SampleRepository) -> None:
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{sample.path}", str(shallow)],
                   check=True)
    history = GitHistory(shallow)
    assert history.shallow
    prs = history.pull_requests()
    assert [pr.number for pr in prs] == [7]
    assert history.skipped == ["PR #6: its base commit is not in this clone (a shallow clone?)"]


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAVINCI_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_json_contract(tmp_path: Path, sample: SampleRepository) -> None:
    result = run_cli("mine", "--git", str(sample.path), "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"repository", "pull_requests", "links", "chains"}
    assert document["pull_requests"] == 7
    assert all(isinstance(k["from"], int) and isinstance(k["to"], int) and k["from"] < k["to"]
               for k in document["links"])
    assert {"from": 2, "to": 4, "kind": "fixes",
            "evidence": SLUG_FIX} \
        in document["links"]
    assert sorted(c["prs"] for c in document["chains"]) == [[1, 2, 4], [3, 5, 6]]
    listed = json.loads(run_cli("chains", "list", "--json", data_dir=tmp_path).stdout)
    chain_id = next(c["id"] for c in listed["chains"] if c["prs"] == [1, 2, 4])
    shown = run_cli("chains", "show", chain_id[:6], data_dir=tmp_path)
    assert shown.returncode == 0 and "fixes #2: fix changes 1 code line" in shown.stdout
    missing = run_cli("chains", "show", "nope", data_dir=tmp_path)
    assert missing.returncode != 0 and "no chain 'nope'" in missing.stderr
    listing = run_cli("chains", "list", data_dir=tmp_path).stdout
    assert "#1 Slugify, part 1 of 2: basic slugs … #4 Fix trailing dash" in listing
    assert "eligible: 3 of 3 PRs change tests and code" in listing
    again = run_cli("mine", "--git", str(sample.path), data_dir=tmp_path)
    assert again.returncode == 0 and "mined 0 new of 7 pull requests" in again.stderr
    assert f"7 pull requests, {len(document['links'])} links, 2 chains" in again.stdout
    bad = run_cli("mine", "--git", str(tmp_path / "nowhere"), data_dir=tmp_path)
    assert bad.returncode != 0 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def fixes_into(db: Database, later: int) -> set[int]:
    with db.session() as session:
        return {k["from"] for k in all_links(session, "textkit-dev/textkit")
                if k["kind"] == "fixes" and k["to"] == later}


PARSE = ("def parse(text):\n    items = text.split(',')\n    cleaned = [i.strip() for i in items]\n"
         "    return [c for c in cleaned if c]\n")


def test_blame_looks_through_a_formatter_run_and_a_rename(sqlite_db: Database,
                                                          tmp_path: Path) -> None:
    """#2 re-lays out #1's code (a formatter's run: the same syntax tree), #3 renames its
    variables; the fix #4 repairs #1's logic, so it links to #1 alone, and the formatter's
    run is ignored: never a chain member."""
    repo = GitRepo.init(tmp_path / "format", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    repo.pull_request(1, "Add parse", {"kit.py": PARSE}, squash=True)
    relaid = ('def parse(text):\n    items = text.split(",")\n'
              '    cleaned = [\n        i.strip() for i in items\n    ]\n'
              '    return [c for c in cleaned if c]\n')
    repo.pull_request(2, "Format with black", {"kit.py": relaid}, squash=True)
    renamed = relaid.replace("items", "parts").replace("cleaned", "stripped") \
        .replace(" c ", " s ").replace("[c ", "[s ").replace("if c]", "if s]")
    repo.pull_request(3, "Rename locals", {"kit.py": renamed}, squash=True)
    fixed = renamed.replace('text.split(",")', 'text.replace(";", ",").split(",")') \
        .replace("if s]", "if s and not s.startswith('#')]")
    repo.pull_request(4, "Fix parse for semicolons and comments", {"kit.py": fixed},
                      squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 4) == {1}
    with sqlite_db.session() as session:
        from chains.store import PullRequestRow
        ignored = {row.number for row in session.query(PullRequestRow).filter_by(ignored=True)}
    assert ignored == {2}


def test_a_fix_of_layout_fixes_no_one(sqlite_db: Database, tmp_path: Path) -> None:
    """uvicorn #616 "Fix formatting" re-laid out a statement #609 wrote and sorted an import:
    the lines of a file whose syntax tree stays the same are no lines it changed, and an
    import is no code line, so it fixes no one (it was linked to #609). A fix beside a
    re-layout still links through the file it changed."""
    repo = GitRepo.init(tmp_path / "relaid", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    reload = ("class BaseReload:\n    def should_restart(self):\n"
              "        raise NotImplementedError(\n"
              "            'Reload strategies should override should_restart()'\n        )\n")
    main = "from kit.supervisors import Multiprocess, ChangeReload\n\n\ndef run():\n    pass\n"
    repo.pull_request(1, "Use watchdog for file changes", {
        "kit/reload.py": reload, "kit/main.py": main}, squash=True)
    repo.pull_request(2, "Fix formatting", {
        "kit/reload.py": reload.replace("(\n            'Reload", "('Reload")
        .replace("()'\n        )", "()')"),
        "kit/main.py": main.replace("Multiprocess, ChangeReload", "ChangeReload, Multiprocess")},
        squash=True)
    repo.pull_request(3, "Fix run and reflow the reload error", {
        "kit/reload.py": reload.replace("(\n            'Reload", "(  'Reload"),
        "kit/main.py": main.replace("    pass\n", "    return Multiprocess\n")}, squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 2) == set()
    assert fixes_into(sqlite_db, 3) == {1}


def test_only_code_lines_count_and_only_code_changes_fix(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    """A fix whose only line of #1 is a comment (or an import, or a blank) does not link to
    #1; a PR that only rewords comments and docstrings is no fix of anyone; lock files and
    configuration are never blamed."""
    repo = GitRepo.init(tmp_path / "incidental", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    repo.pull_request(1, "Add helpers", {
        "kit.py": "import os\n# helpers for paths\n\ndef home():\n    '''The home.'''\n"
                  "    return os.environ['HOME']\n",
        "poetry.lock": "[[package]]\nname = 'a'\nversion = '1'\n",
        "tox.ini": "[testenv]\ncommands = pytest\n"}, squash=True)
    repo.pull_request(2, "Add tool", {"tool.py": "def run(x):\n    y = x + 1\n    return y\n"},
                      squash=True)
    repo.pull_request(3, "Fix tool off by one", {
        "tool.py": "def run(x):\n    y = x + 2\n    return y\n",
        "kit.py": "import os\n# helpers for the user's paths\n\ndef home():\n    '''The home.'''\n"
                  "    return os.environ['HOME']\n",
        "poetry.lock": "[[package]]\nname = 'a'\nversion = '2'\n",
        "tox.ini": "[testenv]\ncommands = pytest -x\n"}, squash=True)
    repo.pull_request(4, "Fix typos in docstrings", {
        "kit.py": "import os\n# helpers for the user's paths\n\ndef home():\n"
                  "    '''The home folder.'''\n    return os.environ['HOME']\n"}, squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 3) == {2}, "the comment, lock and tox lines are not #1's fix"
    assert fixes_into(sqlite_db, 4) == set(), "rewording fixes no one"


def test_the_repository_blame_ignore_list_is_honoured(sqlite_db: Database,
                                                      tmp_path: Path) -> None:
    """Revisions named in `.git-blame-ignore-revs` (a reformat pushed without a PR, or with
    hand edits that keep it from looking like one) are looked through."""
    repo = GitRepo.init(tmp_path / "ignorerevs", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    repo.pull_request(1, "Add parse", {"kit.py": PARSE}, squash=True)
    rewritten = PARSE.replace("items", "pieces").replace("text.split(',')",
                                                         "str(text).split(',')")
    repo.pull_request(2, "Modernise the code base", {"kit.py": rewritten}, squash=True)
    listed = repo.head()
    repo.commit("Ignore the modernisation in blame", {".git-blame-ignore-revs": f"{listed}\n"})
    fixed = rewritten.replace("split(',')", "split(';')")  # a line #2 rewrote
    repo.pull_request(3, "Fix parse: split on semicolons", {"kit.py": fixed}, squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 3) == {1}


def test_cli_names_the_repository_by_its_origin_and_lists_an_ambiguous_prefix(
        tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "clone")
    repo.git("remote", "add", "origin", "git@github.com:octo-org/widgets.git")
    repo.commit("init", {"w.py": "W = 1\n"})
    repo.pull_request(1, "Add gadgets", {"g.py": "G = 1\n",
                                         "tests/test_g.py": "def test(): pass\n"})
    repo.pull_request(2, "Gadgets: follow-up to #1", {"g.py": "G = 2\n",
                                                      "tests/test_g.py": "def test(): 1\n"})
    repo.pull_request(3, "Gadgets again, a follow-up to #1", {"g.py": "G = 3\n"})
    mined = json.loads(run_cli("mine", "--git", str(repo.path), "--json",
                               data_dir=tmp_path).stdout)
    assert mined["repository"] == "octo-org/widgets"
    ids = sorted(c["id"] for c in mined["chains"] if c["prs"][0] == 1)
    assert len(ids) == 2
    several = run_cli("chains", "show", "1-", data_dir=tmp_path)
    assert several.returncode != 0 and "'1-' names 2 chains" in several.stderr
    assert all(i in several.stderr for i in ids) and "Traceback" not in several.stderr
    listed = run_cli("chains", "list", "--repository", "octo-org/widgets", data_dir=tmp_path)
    assert listed.stdout.count("    eligible: 2 of 2 PRs change tests and code") == 1
    unready = ("not eligible: 1 of 2 PRs change tests and code; a rollout needs 2 (only a PR "
               "that changes tests and code makes a stage")
    assert f"    state: {unready}" in listed.stdout and listed.stdout.count(unready) == 1


def test_a_pr_that_changes_tests_alone_is_no_stage_to_verify(tmp_path: Path) -> None:
    """click #3505 -> #3676 "Restore `test_echo_color_flag` from #3505": the follow-up
    changes a test file only, so a rollout has no stage for it; mining says so."""
    repo = GitRepo.init(tmp_path / "clone")
    repo.commit("init", {"echo.py": "def echo(text):\n    print(text)\n"})
    repo.pull_request(1, "Remove colorama", {
        "echo.py": "def echo(text, color=None):\n    print(text)\n",
        "tests/test_echo.py": "def test_echo(): pass\n"})
    repo.pull_request(2, "Restore test_echo_color_flag from #1", {
        "tests/test_echo.py": "def test_echo(): pass\ndef test_echo_color_flag(): pass\n"})
    mined = json.loads(run_cli("mine", "--git", str(repo.path), "--json",
                               data_dir=tmp_path).stdout)
    [chain] = [c for c in mined["chains"] if c["prs"] == [1, 2]]
    assert not chain["eligible"]
    listed = run_cli("chains", "list", data_dir=tmp_path).stdout
    assert "not eligible: 1 of 2 PRs change tests and code; a rollout needs 2" in listed


SCALE = ("def scale(values, factor):\n"
         "    adjusted = [value * factor for value in values if value is not None]\n"
         "    clipped = [min(value, upper_limit_for(values)) for value in adjusted]\n"
         "    return [round(value, precision_for(factor)) for value in clipped]\n")


def test_a_copied_line_is_the_copiers_a_moved_line_stays_its_authors(sqlite_db: Database,
                                                                       tmp_path: Path) -> None:
    """#2 copies #1's block into a new function (the original stays); #3 fixes the copy, so
    it repairs #2's work. #4 moves #1's block to another module (the original goes); #5 fixes
    it there, so it repairs #1's."""
    repo = GitRepo.init(tmp_path / "copies", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    repo.pull_request(1, "Add scale", {"kit.py": SCALE}, squash=True)
    copied = SCALE.replace("def scale(", "def scale_all(")
    repo.pull_request(2, "Add scale_all", {"kit.py": SCALE + "\n\n" + copied}, squash=True)
    fixed = copied.replace("* factor", "* factor if factor else value")
    repo.pull_request(3, "Fix scale_all with no factor", {"kit.py": SCALE + "\n\n" + fixed},
                      squash=True)
    repo.pull_request(4, "Move scale to its own module",
                      {"kit.py": "from scaling import scale\n\n\n" + fixed,
                       "scaling.py": SCALE}, squash=True)
    repo.pull_request(5, "Fix scale rounding", {"scaling.py": SCALE.replace(
        "round(value, precision_for(factor))", "round(value, precision_for(factor) + 1)")},
        squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 3) == {2}
    assert fixes_into(sqlite_db, 5) == {1}


def test_a_title_saying_it_fixes_what_a_linter_reported_is_a_sweep(sqlite_db: Database,
                                                                   tmp_path: Path) -> None:
    """"Fix flake8 issues" restyles #1's lines: no link, and it is ignored; "Fix mypy tests"
    is a fix like any other."""
    repo = GitRepo.init(tmp_path / "lint", owner="textkit-dev", name="textkit")
    repo.commit("init", {"README.md": "# kit\n"})
    repo.pull_request(1, "Add parse", {"kit.py": PARSE}, squash=True)
    linted = PARSE.replace("if c]", "if c != None]")
    repo.pull_request(2, "Fix flake8 issues", {"kit.py": linted}, squash=True)
    repo.pull_request(3, "Fix mypy tests", {"kit.py": linted.replace("if c != None]",
                                                                      "if c is not None]")},
                      squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 2) == set()
    assert fixes_into(sqlite_db, 3) == {1}, "blame looks through the sweep to #1"
    with sqlite_db.session() as session:
        from chains.store import PullRequestRow
        ignored = {row.number for row in session.query(PullRequestRow).filter_by(ignored=True)}
    assert ignored == {2}


def test_lines_pushed_without_a_pr_count_in_a_fixs_share(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    """#1 wrote one of the five lines #3 rewrites; the other four were pushed straight to the
    branch: #1's share is a fifth, under a quarter, so no link. #4 rewrites #2's line and one
    pushed line: half, a link."""
    repo = GitRepo.init(tmp_path / "direct", owner="textkit-dev", name="textkit")
    body = "".join(f"    v{n} = w{n} + {n}\n" for n in range(1, 5))
    repo.commit("Add calc", {"calc.py": f"def calc(w1, w2, w3, w4):\n{body}"
                             "    return v1 + v2 + v3 + v4\n",
                             "other.py": "def other(a):\n    b = a * 2\n    return b\n"})
    repo.pull_request(1, "Add calc total", {"calc.py": f"def calc(w1, w2, w3, w4):\n{body}"
                                            "    return sum((v1, v2, v3, v4))\n"}, squash=True)
    repo.pull_request(2, "Offset other", {"other.py": "def other(a):\n    b = a * 2\n"
                                          "    return b + 1\n"}, squash=True)
    repo.pull_request(3, "Fix calc overflow", {"calc.py": "def calc(w1, w2, w3, w4):\n"
                                               + body.replace(" + ", " - ")
                                               + "    return sum((v1, v2, v3, v4)) % 256\n"},
                      squash=True)
    repo.pull_request(4, "Fix other offset", {"other.py": "def other(a):\n    b = a * 3\n"
                                              "    return b - 1\n"}, squash=True)
    mine(sqlite_db, repo.path)
    assert fixes_into(sqlite_db, 3) == set()
    assert fixes_into(sqlite_db, 4) == {2}
