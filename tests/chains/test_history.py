"""Real-shaped histories: maintenance lines, merges made the wrong way round, fork merges
inside a contributor's branch, reverts named by short sha, restores."""

from __future__ import annotations

from pathlib import Path

from bot.db import Database
from chains.gitsource import GitBlame, GitHistory
from chains.mining import attach_pull_request
from chains.model import UNTRACED, LineRange
from chains.queries import all_links
from tests.gitrepo import GitRepo

REPO = "textkit-dev/textkit"


def mine(db: Database, repo: GitRepo) -> GitHistory:
    history = GitHistory(repo.path, repository=REPO)
    with GitBlame(repo.path) as blame:
        for pr in history.pull_requests():
            with db.session() as session:
                attach_pull_request(session, pr, blame)
    return history


def links(db: Database) -> set[tuple[int, int, str]]:
    with db.session() as session:
        return {(k["from"], k["to"], k["kind"]) for k in all_links(session, REPO)}


def merge(repo: GitRepo, into: str, branch: str, message: str) -> str:
    repo.checkout(into)
    repo.git("merge", "-q", "--no-ff", "-m", message, branch)
    return repo.head()


def merged_into(repo: GitRepo, line: str, number: int, title: str,
                files: dict[str, str | bytes | None]) -> str:
    """PR ``number`` branched from ``line``, one commit, merged back into ``line`` the way
    GitHub's merge button does."""
    repo.branch(f"pr-{number}", line)
    repo.commit(title, files)
    return merge(repo, line, f"pr-{number}",
                 f"Merge pull request #{number} from someone/pr-{number}\n\n{title}")


def new_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "kit", owner="textkit-dev", name="textkit")
    repo.commit("init", {"kit.py": "def one():\n    return 1\n"})
    return repo


def test_a_pr_owns_only_what_its_merge_brought(sqlite_db: Database, tmp_path: Path) -> None:
    """A maintenance line merged into main (not through a PR) and then into a PR's branch:
    the PR's commits are `merge^1..merge^2`, its one commit, not the maintenance line's."""
    repo = new_repo(tmp_path)
    repo.pull_request(3, "Add two", {"two.py": "def two():\n    return 2\n"})
    repo.branch("maint")
    for i in range(3):
        repo.commit(f"Backport {i}, see #3", {f"m{i}.py": f"M = {i}\n"})
    merge(repo, "main", "maint", "Merge branch 'maint'")
    repo.branch("feature")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'maint' into feature", "maint")
    own = repo.commit("Add three", {"three.py": "def three():\n    return 3\n"})
    merge(repo, "main", "feature", "Merge pull request #4 from someone/feature\n\nAdd three")
    prs = {pr.number: pr for pr in mine(sqlite_db, repo).pull_requests()}
    assert [c.sha for c in prs[4].commits] == [own]
    assert (3, 4, "references") not in links(sqlite_db)


def test_prs_merged_into_a_maintenance_line_are_mined(sqlite_db: Database,
                                                      tmp_path: Path) -> None:
    """PR #5 was merged into `1.x`, which reached main only as a second parent: #5 is mined on
    its own first-parent base, and a later fix of its code links to it."""
    repo = new_repo(tmp_path)
    repo.branch("1.x")
    repo.branch("fix-parse", "1.x")
    branch_commit = repo.commit("Add parse", {
        "parse.py": "def parse(text):\n    parts = text.split(',')\n    return parts\n"})
    five = merge(repo, "1.x", "fix-parse", "Merge pull request #5 from someone/fix-parse\n\n"
                                           "Add a parser")
    merge(repo, "main", "1.x", "Merge branch '1.x'")
    repo.pull_request(6, "Fix parse of empty text", {
        "parse.py": "def parse(text):\n    parts = [p for p in text.split(',') if p]\n"
                    "    return parts\n"}, squash=True)
    history = mine(sqlite_db, repo)
    prs = {pr.number: pr for pr in history.pull_requests()}
    assert sorted(prs) == [5, 6]
    assert prs[5].merge_commit == five and prs[5].title == "Add a parser"
    assert [c.sha for c in prs[5].commits] == [branch_commit]
    assert [f.path for f in prs[5].files] == ["parse.py"]
    assert (5, 6, "fixes") in links(sqlite_db)


def test_a_fork_merge_inside_a_branch_is_no_pr_and_names_no_one(sqlite_db: Database,
                                                                 tmp_path: Path) -> None:
    """A contributor merged their fork's own PR #2 into their branch: that is neither this
    repository's PR #2 nor a reference to it."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add two", {"two.py": "def two():\n    return 2\n"})
    for number in range(7, 10):
        repo.pull_request(number, f"Add f{number}", {f"f{number}.py": f"F = {number}\n"})
    repo.branch("feature")
    repo.branch("fork-work", "feature")
    repo.commit("Tweak docs in the fork", {"notes.txt": "n\n"})
    merge(repo, "feature", "fork-work", "Merge pull request #2 from contributor/fork-work")
    repo.commit("Add eleven", {"eleven.py": "E = 11\n"})
    merge(repo, "main", "feature", "Merge pull request #11 from contributor/feature\n\n"
                                   "Add eleven")
    history = mine(sqlite_db, repo)
    numbers = [pr.number for pr in history.pull_requests()]
    assert numbers == [2, 7, 8, 9, 11]
    assert not [link for link in links(sqlite_db) if link[1] == 11]


def test_a_revert_named_by_a_short_sha_in_its_title_links(sqlite_db: Database,
                                                          tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Speed up one", {"kit.py": "def one():\n    return 0 + 1\n"},
                      squash=True)
    short = repo.head()[:8]
    repo.pull_request(3, "Add two", {"two.py": "def two():\n    return 2\n"}, squash=True)
    repo.pull_request(4, f"Reverting {short}, it broke the build",
                      {"kit.py": "def one():\n    return 1\n"}, squash=True)
    mine(sqlite_db, repo)
    assert (2, 4, "references") in links(sqlite_db)


def test_a_restore_links_to_the_pr_that_removed_the_lines(sqlite_db: Database,
                                                          tmp_path: Path) -> None:
    """Nothing of the base is changed, so blame has nothing to say: the PR that removed the
    put-back lines is found by what it removed."""
    keep = "def keep(items):\n    return [item for item in items if item is not None]\n"
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add keep", {"util.py": "X = 1\n\n" + keep}, squash=True)
    repo.pull_request(3, "Clean up util", {"util.py": "X = 1\n"}, squash=True)
    repo.pull_request(4, "Add two", {"two.py": "def two():\n    return 2\n"}, squash=True)
    repo.pull_request(5, "Restore keep, still used by plugins", {"util.py": "X = 1\n\n" + keep},
                      squash=True)
    repo.pull_request(6, "Add three", {"three.py": "def three():\n    return 3\n"},
                      squash=True)
    repo.pull_request(7, "Remove three", {"three.py": "T = 0\n"}, squash=True)
    repo.pull_request(8, "Fix crash: re-add three", {
        "three.py": "T = 0\n\ndef three():\n    return 3\n"}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 5, "fixes") in found and (2, 5, "fixes") not in found
    assert (7, 8, "fixes") in found


def test_one_more_copy_of_a_line_the_file_holds_puts_nothing_back(sqlite_db: Database,
                                                                   tmp_path: Path) -> None:
    """click #1832 removed a `self.write("\n")` from one method; #3434 fixes another method
    by only adding a `self.write("\n")` to it, while the file still holds that line elsewhere.
    Nothing was missing, so nothing was put back: no `fixes` link to #1832."""
    usage = ('    def write_usage(self, prog, args):\n        self.write(prog)\n'
             '        self.write(" " + args)\n')
    text = ('class Formatter:\n    def write_dl(self, rows):\n        for row in rows:\n'
            '            self.write(row)\n            self.write("\\n")\n\n'
            '    def write_heading(self, heading):\n        self.write(heading)\n'
            '        self.write("\\n")\n\n')
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add the formatter", {"formatting.py": text + usage}, squash=True)
    repo.pull_request(3, "Revert the blank line after the definition list", {
        "formatting.py": text.replace('            self.write("\\n")\n', "", 1) + usage},
        squash=True)
    repo.pull_request(4, "Fix write_usage output running into the next line", {
        "formatting.py": text.replace('            self.write("\\n")\n', "", 1) + usage
        + '        self.write("\\n")\n'}, squash=True)
    mine(sqlite_db, repo)
    assert (3, 4, "fixes") not in links(sqlite_db)


def test_a_release_s_version_is_no_one_s_code(sqlite_db: Database, tmp_path: Path) -> None:
    """urllib3 #1570 "Restore dev version" put back the `__version__ = 'dev'` the release
    #1568 replaced: a version a release sets is bookkeeping, not code anyone fixes."""
    repo = new_repo(tmp_path)
    code = "def load(path):\n    return open(path).read()\n"
    repo.pull_request(2, "Add the loader", {"kit/__init__.py": '__version__ = "dev"\n\n' + code},
                      squash=True)
    repo.pull_request(3, "Release 1.0", {"kit/__init__.py": '__version__ = "1.0"\n\n' + code},
                      squash=True)
    repo.pull_request(4, "Restore dev version", {
        "kit/__init__.py": '__version__ = "dev"\n\n' + code}, squash=True)
    mine(sqlite_db, repo)
    assert (3, 4, "fixes") not in links(sqlite_db)


def test_code_moved_and_renamed_by_a_refactor_is_not_the_refactor_s(sqlite_db: Database,
                                                                    tmp_path: Path) -> None:
    """#3 moved #2's loop into a method and renamed its variables; #4 fixes a line of that
    loop. The refactor carried the line, it did not write it: no `fixes` link to #3."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add totals", {"shop.py": (
        "def total(items):\n    result = 0\n    for item in items:\n"
        "        result += item.price\n    return result\n")}, squash=True)
    repo.pull_request(3, "Refactor totals into a basket", {"shop.py": (
        "class Basket:\n    def __init__(self, entries):\n        self.entries = entries\n\n"
        "    def total(self):\n        amount = 0\n        for entry in self.entries:\n"
        "            amount += entry.price\n        return amount\n")}, squash=True)
    repo.pull_request(4, "Fix total of discounted entries", {"shop.py": (
        "class Basket:\n    def __init__(self, entries):\n        self.entries = entries\n\n"
        "    def total(self):\n        amount = 0\n        for entry in self.entries:\n"
        "            amount += entry.price - entry.discount\n        return amount\n")},
        squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 4, "fixes") not in found
    assert (2, 4, "fixes") in found


def test_a_bots_pr_links_to_no_one_and_blame_looks_through_it(sqlite_db: Database,
                                                              tmp_path: Path) -> None:
    """Dependabot quotes other projects' release notes ("fixes #2" is theirs); a hook update
    by pre-commit-ci that rewrote a line does not own it."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add parse",
                      {"parse.py": "def parse(text):\n    return text.split(',')\n"}, squash=True)
    repo.pull_request(3, "Bump pytest from 7 to 8", {"requirements.txt": "pytest==8\n"},
                      squash=True)
    repo.git("commit", "--amend", "--reset-author", "-q", "-m", "Bump pytest from 7 to 8 (#3)\n\n"
             "Release notes: fixes #2, follow-up to #2", author="dependabot[bot]")
    repo.pull_request(4, "[pre-commit.ci] pre-commit autoupdate", {
        "parse.py": "def parse(text):\n    return text.split(\",\")\n"}, squash=True)
    repo.git("commit", "--amend", "--reset-author", "-q", "--no-edit",
             author="pre-commit-ci[bot]")
    repo.pull_request(5, "Fix parse of blanks", {
        "parse.py": "def parse(text):\n    return [p for p in text.split(',') if p]\n"},
        squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert not [link for link in found if 3 in link[:2] or 4 in link[:2]]
    assert (2, 5, "fixes") in found


def test_lines_a_fix_only_moves_or_recomments_are_not_what_it_fixes(sqlite_db: Database,
                                                                     tmp_path: Path) -> None:
    """#3 fixes one line of #2, and on the way moves #1's helper to another module and adds
    a `# noqa` to one of #1's lines: only #2 is fixed."""
    repo = new_repo(tmp_path)
    repo.pull_request(1, "Add helpers", {
        "util.py": "def helper():\n    value = compute()\n    return value\n",
        "main.py": "def main(args):\n    return dispatch(args)\n"}, squash=True)
    repo.pull_request(2, "Add run", {"core.py": "def run(x):\n    y = x * 2\n    return y\n"},
                      squash=True)
    repo.pull_request(3, "Fix run overflow", {
        "util.py": None,
        "helpers.py": "def helper():\n    value = compute()\n    return value\n",
        "main.py": "def main(args):\n    return dispatch(args)  # noqa: E501\n",
        "core.py": "def run(x):\n    y = min(x * 2, 100)\n    return y\n"}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 3, "fixes") in found and (1, 3, "fixes") not in found


def test_a_linter_adoption_is_no_ones_work(sqlite_db: Database, tmp_path: Path) -> None:
    """"Use ruff" rewrote #2's comparison into an equivalent one (a new syntax tree, so not a
    layout-only change): a later fix of that line still belongs to #2."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add check", {
        "check.py": "def check(x):\n    if x == None:\n        return 0\n    return x\n"},
        squash=True)
    repo.pull_request(3, "Use ruff", {
        "check.py": "def check(x):\n    if x is None:\n        return 0\n    return x\n"},
        squash=True)
    repo.pull_request(4, "Fix check of empty values", {
        "check.py": "def check(x):\n    if not x:\n        return 0\n    return x\n"},
        squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 4, "fixes") in found and (3, 4, "fixes") not in found


def test_a_revert_gives_lines_back_to_who_wrote_them(sqlite_db: Database,
                                                     tmp_path: Path) -> None:
    """#3 reverts #2's rewrite, which puts #1's lines back: a later fix of them fixes #1, and
    the revert itself fixes no one (it names what it reverts)."""
    repo = new_repo(tmp_path)
    original = "def names(f):\n    args = f.__code__.co_varnames\n    return args[1:]\n"
    repo.pull_request(1, "Add names", {"inspect.py": original}, squash=True)
    repo.pull_request(2, "Use signature in names", {"inspect.py": (
        "def names(f):\n    args = list(signature(f).parameters)\n    return args\n")},
        squash=True)
    repo.pull_request(3, 'Revert "Use signature in names"', {"inspect.py": original},
                      squash=True)
    repo.pull_request(4, "Fix names of static methods", {"inspect.py": (
        "def names(f):\n    args = f.__code__.co_varnames\n    return args[is_method(f):]\n")},
        squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 3, "references") in found
    assert not [link for link in found if link[1] == 3 and link[2] == "fixes"]
    assert (1, 4, "fixes") in found and (3, 4, "fixes") not in found


def test_an_imported_history_s_numbers_yield_to_the_repository_s_own(sqlite_db: Database,
                                                                     tmp_path: Path) -> None:
    """An old project's history came in with its PRs numbered #2 and #3; the new project
    numbered #3 again, and its #4 says "Closes #2", its own issue: a number named twice is
    the latest PR's (numbers start again in the new repository), and a closing keyword names
    an issue, never a merged PR."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Old: add two", {"two.py": "T = 2\n"})
    repo.pull_request(3, "Old: add three", {"three.py": "T = 3\n"})
    repo.commit("Add four (#3)", {"four.py": "F = 4\n"})  # the new project's own #3
    repo.pull_request(4, "Handle empty input", {"four.py": "F = 4 or 0\n"}, squash=True)
    repo.git("commit", "--amend", "-q", "-m", "Handle empty input (#4)\n\nCloses #2")
    history = mine(sqlite_db, repo)
    prs = {pr.number: pr for pr in history.pull_requests()}
    assert sorted(prs) == [2, 3, 4] and prs[3].title == "Add four"
    assert any("#3" in reason and "two merged PRs" in reason for reason in history.skipped)
    assert (2, 4, "references") not in links(sqlite_db)


def test_a_merge_commit_titled_with_the_pr_s_title_is_a_pr(sqlite_db: Database,
                                                           tmp_path: Path) -> None:
    """A repository whose merge message is the PR's title leaves "Title (#N)" on a merge
    commit: that is PR #N, with its branch's commits."""
    repo = new_repo(tmp_path)
    repo.branch("parser")
    own = repo.commit("Add parse", {"parse.py": "def parse(text):\n    return text.split()\n"})
    merged = merge(repo, "main", "parser", "Add a parser (#5)\n\nSplits on spaces.")
    repo.branch("fix")
    repo.commit("Split on commas", {"parse.py": "def parse(text):\n    return text.split(',')\n"})
    merge(repo, "main", "fix", "Fix parse of comma lists (#6)")
    prs = {pr.number: pr for pr in mine(sqlite_db, repo).pull_requests()}
    assert sorted(prs) == [5, 6]
    assert prs[5].title == "Add a parser" and prs[5].body == "Splits on spaces."
    assert prs[5].merge_commit == merged and [c.sha for c in prs[5].commits] == [own]
    assert (5, 6, "fixes") in links(sqlite_db)


def test_a_fix_that_wraps_a_line_in_new_code_fixes_its_writer(sqlite_db: Database,
                                                              tmp_path: Path) -> None:
    """#3 puts a `try:` around the one line of #2 it repairs: the line is put back, indented,
    inside new code, so it is the line the fix works on, not one it moved."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add teardown of wrappers", {"calls.py": (
        "def unwind(wrappers, error):\n    for wrapper in wrappers:\n"
        "        wrapper.throw(error)\n    return None\n")}, squash=True)
    repo.pull_request(3, "Fix StopIteration passing through wrappers", {"calls.py": (
        "def unwind(wrappers, error):\n    for wrapper in wrappers:\n        try:\n"
        "            wrapper.throw(error)\n        except RuntimeError as failure:\n"
        "            if failure.__cause__ is not error:\n                raise\n"
        "    return None\n")}, squash=True)
    mine(sqlite_db, repo)
    assert (2, 3, "fixes") in links(sqlite_db)


def test_a_lambda_made_a_function_is_carried_not_written(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    """#3 turned #2's lambdas into named functions (to pickle them); #4 fixes what one of
    them returns. The expression is #2's: the fix links to #2, not to the refactor."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add callsite thread parameters", {"callsite.py": (
        "import threading\n\nGETTERS = {\n"
        "    'thread': lambda module, frame: threading.get_ident(),\n"
        "    'name': lambda module, frame: threading.current_thread().name,\n}\n")},
        squash=True)
    repo.pull_request(3, "Make callsite getters picklable", {"callsite.py": (
        "import threading\n\n\ndef _thread(module, frame):\n"
        "    return threading.get_ident()\n\n\ndef _name(module, frame):\n"
        "    return threading.current_thread().name\n\n\n"
        "GETTERS = {'thread': _thread, 'name': _name}\n")}, squash=True)
    repo.pull_request(4, "Fix thread id of async log calls", {"callsite.py": (
        "import threading\n\nCALLER = None\n\n\ndef _thread(module, frame):\n"
        "    if CALLER is None:\n        return threading.get_ident()\n"
        "    return CALLER[0]\n\n\ndef _name(module, frame):\n"
        "    return threading.current_thread().name\n\n\n"
        "GETTERS = {'thread': _thread, 'name': _name}\n")}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 4, "fixes") in found and (3, 4, "fixes") not in found


def test_an_imported_history_is_not_mined(sqlite_db: Database, tmp_path: Path) -> None:
    """Three numbers of an old project's history were given again by the new repository:
    every PR up to the last one they displaced is of the old project, so "#1" in a later
    message names the new repository's issue, not the old PR #1."""
    repo = new_repo(tmp_path)
    for number in (1, 2, 3, 9):
        repo.pull_request(number, f"Old: add {number}", {f"old{number}.py": f"X = {number}\n"})
    for number in (1, 2, 3):  # squash merges of the new repository's own PRs
        repo.commit(f"Add {number} (#{number})", {f"new{number}.py": f"Y = {number}\n"})
    repo.pull_request(4, "Handle the case of #1", {"new1.py": "Y = 1 or 0\n"}, squash=True)
    history = mine(sqlite_db, repo)
    prs = {pr.number: pr for pr in history.pull_requests()}
    assert sorted(prs) == [1, 2, 3, 4] and prs[1].title == "Add 1"
    assert any("imported history" in reason and "4 PRs" in reason for reason in history.skipped)
    assert not any(link[0] == 9 for link in links(sqlite_db))


def test_type_hints_added_are_looked_through(sqlite_db: Database, tmp_path: Path) -> None:
    """#3 only added type hints (annotations, a typing import, `from __future__`): a later
    fix of #2's line is #2's, not the typing PR's."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add size", {"size.py": (
        "def size(count, unit=None):\n    label = unit or 'B'\n"
        "    return '%d %s' % (count, label)\n")}, squash=True)
    repo.pull_request(3, "Declare what size takes and gives", {"size.py": (
        "from __future__ import annotations\n\nfrom typing import Optional\n\n\n"
        "def size(count: int, unit: Optional[str] = None) -> str:\n"
        "    label: str = unit or 'B'\n    return '%d %s' % (count, label)\n")}, squash=True)
    repo.pull_request(4, "Fix the default unit of size", {"size.py": (
        "from __future__ import annotations\n\nfrom typing import Optional\n\n\n"
        "def size(count: int, unit: Optional[str] = None) -> str:\n"
        "    label: str = unit or 'bytes'\n    return '%d %s' % (count, label)\n")},
        squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 4, "fixes") in found and (3, 4, "fixes") not in found


def test_packaging_files_link_no_fix(sqlite_db: Database, tmp_path: Path) -> None:
    """setup.py and dot-files are configuration, like pyproject.toml: a fix that also
    touches their lines is no fix of whoever wrote those."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Write the version file", {
        "setup.py": "from setuptools import setup\nsetup(name='kit', use_scm_version=True)\n",
        ".gitignore": "kit/_version.py\n"}, squash=True)
    repo.pull_request(3, "Fix install without git", {
        "setup.py": "from setuptools import setup\nsetup(name='kit', version='1.0')\n",
        ".gitignore": "build/\n"}, squash=True)
    mine(sqlite_db, repo)
    assert not [link for link in links(sqlite_db) if link[2] == "fixes"]


YEAR = 365 * 24 * 3600


def test_a_pr_years_older_is_fixed_only_when_it_wrote_every_line(sqlite_db: Database,
                                                                 tmp_path: Path) -> None:
    """#4 changes one line of #2, two years old, and one of #3, recent: the old line is one
    it met on its way, so it fixes #3 alone. #5 changes only #2's lines: it fixes #2, unless
    it is one line of a PR more than two years old (#6)."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add the price", {"shop.py": (
        "def price(item):\n    base = item.cost * 2\n    return round(base, 2)\n")},
        squash=True)
    repo.clock += 2 * YEAR
    repo.pull_request(3, "Add discounts", {"shop.py": (
        "def price(item):\n    base = item.cost * 2\n    base -= item.discount\n"
        "    return round(base, 2)\n")}, squash=True)
    repo.pull_request(4, "Fix negative prices after discounts", {"shop.py": (
        "def price(item):\n    base = item.cost * 2.0\n    base = max(0, base - item.discount)\n"
        "    return round(base, 2)\n")}, squash=True)
    repo.pull_request(5, "Fix rounding of prices", {"shop.py": (
        "def price(item, places=2):\n    base = item.cost * 2.0\n"
        "    base = max(0, base - item.discount)\n    return round(base + 0.0, places)\n")},
        squash=True)
    repo.pull_request(6, "Add the tax", {"tax.py": (
        "def tax(amount):\n    rate = 0.2\n    return amount * rate\n")}, squash=True)
    repo.clock += 2 * YEAR
    repo.pull_request(7, "Fix the tax rate", {"tax.py": (
        "def tax(amount):\n    rate = 0.25\n    return amount * rate\n")}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 4, "fixes") in found and (2, 4, "fixes") not in found
    assert (2, 5, "fixes") in found  # two lines of #2
    assert (6, 7, "fixes") not in found  # one line, over two years on


def test_an_else_after_return_removed_is_looked_through(sqlite_db: Database,
                                                        tmp_path: Path) -> None:
    """#3 only turned `elif`/`else` after `return` into plain `if`s (a linter's clean-up):
    the condition #4 fixes is still #2's."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add plural", {"words.py": (
        "def plural(word, n):\n    if n == 1:\n        return word\n"
        "    elif word.endswith('s'):\n        return word + 'es'\n    else:\n"
        "        return word + 's'\n")}, squash=True)
    repo.pull_request(3, "Tidy plural", {"words.py": (
        "def plural(word, n):\n    if n == 1:\n        return word\n"
        "    if word.endswith('s'):\n        return word + 'es'\n"
        "    return word + 's'\n")}, squash=True)
    repo.pull_request(4, "Fix plural of words ending in x", {"words.py": (
        "def plural(word, n):\n    if n == 1:\n        return word\n"
        "    if word.endswith(('s', 'x')):\n        return word + 'es'\n"
        "    return word + 's'\n")}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 4, "fixes") in found and (3, 4, "fixes") not in found


def test_a_fix_of_type_hints_fixes_who_wrote_them(sqlite_db: Database,
                                                  tmp_path: Path) -> None:
    """Blame looks through type hints for a fix of code, not for a fix of the hints: #4
    corrects the return type #3 declared."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add ratio", {"calc.py": (
        "def ratio(a, b):\n    return a / b\n")}, squash=True)
    repo.pull_request(3, "Declare what ratio takes and gives", {"calc.py": (
        "def ratio(a: int, b: int) -> int:\n    return a / b\n")}, squash=True)
    repo.pull_request(4, "Fix the return type of ratio", {"calc.py": (
        "def ratio(a: int, b: int) -> float:\n    return a / b\n")}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 4, "fixes") in found and (2, 4, "fixes") not in found


def test_a_fix_of_type_hints_in_a_renamed_file_fixes_who_wrote_them(sqlite_db: Database,
                                                                    tmp_path: Path) -> None:
    """The fix renames the module on its way: its merged text is read under the new name,
    so it is still told to be a fix of the hints."""
    body = "".join(f"\n\ndef step{i}(a: int) -> int:\n    return a + {i}\n" for i in range(6))
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add ratio", {"calc.py": "def ratio(a, b):\n    return a / b\n" + body},
                      squash=True)
    repo.pull_request(3, "Declare what ratio takes and gives", {
        "calc.py": "def ratio(a: int, b: int) -> int:\n    return a / b\n" + body}, squash=True)
    repo.pull_request(4, "Fix the return type of ratio", {
        "calc.py": None,
        "numbers.py": "def ratio(a: int, b: int) -> float:\n    return a / b\n" + body},
        squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 4, "fixes") in found and (2, 4, "fixes") not in found


def test_a_line_edited_in_passing_is_fixed_past_the_edit(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    """#3 turned #2's `return` into an assignment (to wrap the result) and kept the call as it
    was; #4 fixes the call's argument, which #2 wrote: the fix is #2's, not #3's."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add resolve", {"resolve.py": (
        "def resolve(schema, name):\n    instance = load(name)\n"
        "    return convert(schema)\n")}, squash=True)
    repo.pull_request(3, "Wrap many=True schemas in arrays", {"resolve.py": (
        "def resolve(schema, name, many=False):\n    instance = load(name)\n"
        "    result = convert(schema)\n"
        "    return {'type': 'array', 'items': result} if many else result\n")}, squash=True)
    repo.pull_request(4, "Fix resolve of schemas given by name", {"resolve.py": (
        "def resolve(schema, name, many=False):\n    instance = load(name)\n"
        "    result = convert(instance)\n"
        "    return {'type': 'array', 'items': result} if many else result\n")}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (2, 4, "fixes") in found and (3, 4, "fixes") not in found


def test_a_fix_of_what_the_edit_wrote_fixes_the_edit(sqlite_db: Database,
                                                     tmp_path: Path) -> None:
    """#3 added an argument to #2's call; #4 fixes that argument's value: the tokens the
    fix changes are #3's, so the fix is #3's."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add resolve", {"resolve.py": (
        "def resolve(schema):\n    return convert(schema)\n")}, squash=True)
    repo.pull_request(3, "Convert in strict mode", {"resolve.py": (
        "def resolve(schema):\n    return convert(schema, strict=True)\n")}, squash=True)
    repo.pull_request(4, "Fix strict mode of resolve", {"resolve.py": (
        "def resolve(schema):\n    return convert(schema, strict='all')\n")}, squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 4, "fixes") in found and (2, 4, "fixes") not in found


def test_a_branch_sync_is_no_pr_and_owns_no_ones_lines(sqlite_db: Database,
                                                       tmp_path: Path) -> None:
    """#2 and #3 were merged into `stable`; "Merge stable into main (#4)" brought them to
    main. #4 is a branch sync, not work of its own: it is not mined, and #5, which fixes
    #2's code, fixes #2, not the sync."""
    repo = new_repo(tmp_path)
    repo.branch("stable")
    for number, name in ((2, "parse"), (3, "render")):
        merged_into(repo, "stable", number, f"Add {name}", {f"{name}.py": (
            f"def {name}(text):\n    parts = text.split(',')\n    return parts\n")})
    merge(repo, "main", "stable", "Merge stable into main (#4)")
    repo.pull_request(5, "Fix parse of empty text", {"parse.py": (
        "def parse(text):\n    parts = [p for p in text.split(',') if p]\n"
        "    return parts\n")}, squash=True)
    history = mine(sqlite_db, repo)
    assert [pr.number for pr in history.pull_requests()] == [2, 3, 5]
    assert any("#4" in reason and "branch sync" in reason for reason in history.skipped)
    found = links(sqlite_db)
    assert (2, 5, "fixes") in found and not [link for link in found if 4 in link[:2]]


def test_a_pr_that_also_brings_two_merges_is_still_a_pr(sqlite_db: Database,
                                                        tmp_path: Path) -> None:
    """#4 switches CI and, on the way, merges the maintenance line that brought #2 and #3:
    a PR with a title of its own that brings fewer than three others is still mined."""
    repo = new_repo(tmp_path)
    repo.branch("maint")
    for number in (2, 3):
        merged_into(repo, "maint", number, f"Fix {number} on maint",
                    {f"m{number}.py": f"M = {number}\n"})
    repo.branch("ci", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Bring maint", "maint")
    repo.commit("Switch CI", {"ci.py": "CI = 'pipelines'\n"})
    merge(repo, "main", "ci", "Switch CI to pipelines (#4)")
    history = mine(sqlite_db, repo)
    assert 4 in [pr.number for pr in history.pull_requests()]


def test_one_line_among_others_lines_links_no_one(sqlite_db: Database,
                                                   tmp_path: Path) -> None:
    """#4 rewrites two lines of #3 and one of #2 on its way: one line, a third of what it
    changes, is met in passing, so #4 fixes #3 alone. #5 changes one line of #4 and one of
    #3: half each, and speaks of coupons and the cart as both do, so both are linked."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add the cart", {"cart.py": (
        "def total(cart):\n    items = cart.items\n    return sum(i.price for i in items)\n")},
        squash=True)
    repo.pull_request(3, "Add coupons", {"cart.py": (
        "def total(cart):\n    items = cart.items\n    coupon = cart.coupon or 0\n"
        "    paid = sum(i.price for i in items) - coupon\n    return paid\n")}, squash=True)
    repo.pull_request(4, "Fix coupons larger than the cart", {"cart.py": (
        "def total(cart):\n    items = list(cart.items)\n    coupon = cart.coupon or 0.0\n"
        "    paid = max(0, sum(i.price for i in items) - coupon)\n    return paid\n")},
        squash=True)
    repo.pull_request(5, "Fix coupons and cart items given as generators", {"cart.py": (
        "def total(cart):\n    items = tuple(cart.items)\n    coupon = cart.coupon or 0.0\n"
        "    paid = max(0, sum(i.price for i in items) - coupon)\n    return round(paid, 2)\n")},
        squash=True)
    mine(sqlite_db, repo)
    found = {link for link in links(sqlite_db) if link[2] == "fixes"}
    assert (3, 4, "fixes") in found and (2, 4, "fixes") not in found
    assert {(4, 5, "fixes"), (3, 5, "fixes")} <= found


def test_an_issue_many_prs_name_is_an_umbrella_that_links_no_one(sqlite_db: Database,
                                                                  tmp_path: Path) -> None:
    """A review's findings (#40) fixed one PR each: the first three are linked as sharing
    it, the fourth and fifth are not (three earlier PRs name it: an umbrella). #51 and #52,
    the only two naming #50, are linked."""
    repo = new_repo(tmp_path)
    for number in range(41, 46):
        repo.pull_request(number, f"Tidy module {number}", {f"m{number}.py": f"N = {number}\n"},
                          messages=(f"Flagged in the review of #40, item {number - 40}",))
    repo.pull_request(51, "Start the report", {"report.py": "def report():\n    pass\n"},
                      messages=("Part of #50",))
    repo.pull_request(52, "Finish the report", {"report.py": "def report():\n    return 1\n"},
                      messages=("Finishes #50",))
    mine(sqlite_db, repo)
    shared = {(a, b) for a, b, kind in links(sqlite_db) if kind == "shares_issue"}
    assert shared == {(41, 42), (41, 43), (42, 43), (51, 52)}


def test_a_release_pr_shares_no_issue_its_changelog_lists(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    """#61 fixes #60; the release PR #62 lists #60 in its changelog. It did no work on it, so
    it shares it with no one, before or after: #63, which fixes #60 again, links to #61."""
    repo = new_repo(tmp_path)
    repo.pull_request(61, "Fix the report's totals", {"report.py": "TOTAL = 1\n"},
                      messages=("Fixes #60",))
    repo.pull_request(62, "Release 1.4.0", {"CHANGES.md": "## 1.4.0\n- totals (#60)\n"},
                      messages=("Changelog for #60",))
    repo.pull_request(63, "Fix the report's totals again", {"report.py": "TOTAL = 2\n"},
                      messages=("Closes #60",))
    mine(sqlite_db, repo)
    shared = {(a, b) for a, b, kind in links(sqlite_db) if kind == "shares_issue"}
    assert shared == {(61, 63)}


def test_a_commit_titled_like_a_pr_inside_a_pr_is_its_own(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    """#19, merged into the maintenance line, carries a commit copied from a sister project,
    titled "update project files (#5457)": that is #19's own commit, not PR #5457 of this
    repository. #21 and #22, squash-merged onto the line, stay PRs."""
    repo = new_repo(tmp_path)
    repo.branch("3.1.x")
    repo.branch("pr-19")
    repo.commit("update project files (#5457)", {"setup.cfg": "[metadata]\nname = kit\n"})
    repo.commit("pin the build tools", {"build.txt": "flit==3.9\n"})
    merge(repo, "3.1.x", "pr-19", "update project files (#19)")
    for number in (21, 22):
        repo.commit(f"Fix render {number} (#{number})", {f"r{number}.py": f"R = {number}\n"})
    merge(repo, "main", "3.1.x", "Merge branch '3.1.x'")
    history = mine(sqlite_db, repo)
    numbers = [pr.number for pr in history.pull_requests()]
    assert 19 in numbers and 5457 not in numbers and {21, 22} <= set(numbers)
    assert any("#5457" in reason and "PR #19" in reason for reason in history.skipped)


def test_a_fix_links_only_to_a_pr_it_shares_a_topic_or_a_name_with(sqlite_db: Database,
                                                                   tmp_path: Path) -> None:
    """Blame alone is not enough. #6 changes a line of #2 and one of #3: it speaks of tax, as
    #3 does, so it fixes #3 and not #2. #7 changes only a line #5 edited, and #5 brought no
    name into it nor speaks of what #7 does: no link to #5. #8 changes only #4's lines and
    works on the `cents` #4 brought in: it fixes #4, though their titles share no word."""
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add the price of an item", {"shop.py": (
        "def price(item):\n    base = item.cost * 2\n    return base\n")}, squash=True)
    repo.pull_request(3, "Add tax to totals", {"shop.py": (
        "def price(item):\n    base = item.cost * 2\n    return base\n\n\n"
        "def total(items):\n    return sum(price(i) for i in items) * 1.2\n")}, squash=True)
    repo.pull_request(4, "Show amounts in cents", {"money.py": (
        "def cents(amount):\n    return int(amount * 100)\n\n\n"
        "def label(amount):\n    return f'{cents(amount)} c'\n")}, squash=True)
    repo.pull_request(5, "Scale by a thousand", {"money.py": (
        "def cents(amount):\n    return int(amount * 1000)\n\n\n"
        "def label(amount):\n    return f'{cents(amount)} c'\n")}, squash=True)
    repo.pull_request(6, "Fix the tax rounding", {"shop.py": (
        "def price(item):\n    base = item.cost * 2.0\n    return base\n\n\n"
        "def total(items):\n    return round(sum(price(i) for i in items) * 1.2, 2)\n")},
        squash=True)
    repo.pull_request(7, "Fix crash on empty input", {"money.py": (
        "def cents(amount):\n    return int((amount or 0) * 1000)\n\n\n"
        "def label(amount):\n    return f'{cents(amount)} c'\n")}, squash=True)
    repo.pull_request(8, "Fix the label for zero", {"money.py": (
        "def cents(amount):\n    return int((amount or 0) * 1000)\n\n\n"
        "def label(amount):\n    return f'{cents(amount) or 0} c'\n")}, squash=True)
    mine(sqlite_db, repo)
    with sqlite_db.session() as session:
        evidence = {(k["from"], k["to"]): k["evidence"] for k in all_links(session, REPO)
                    if k["kind"] == "fixes"}
    assert (3, 6) in evidence and (2, 6) not in evidence
    assert "both speak of tax" in evidence[(3, 6)]
    assert (5, 7) not in evidence
    assert (4, 8) in evidence
    assert "cents" in evidence[(4, 8)] and "which #4 brought in" in evidence[(4, 8)]


def test_a_line_blame_cannot_trace_past_its_mover_credits_no_neighbour(
        sqlite_db: Database, tmp_path: Path) -> None:
    """#4 split #2's locale into a base class and a subclass, moving `past = 'fazem {0}'`
    next to #3's locale; #5 fixes that phrase. Blame looking past the move guesses the
    neighbouring `past` line of #3's class, which #5 does not touch: no `fixes` link to #3."""
    tagalog = ("class TagalogLocale(Locale):\n    names = ['tl']\n\n"
               "    past = 'nakaraang {0}'\n    future = '{0} mula ngayon'\n")
    words = ("    future = 'em {0}'\n\n    timeframes = {\n"
             + "".join(f"        '{unit}': '{word}',\n" for unit, word in (
                 ("now", "agora"), ("second", "segundo"), ("minute", "um minuto"),
                 ("hour", "uma hora"), ("day", "um dia"), ("month", "um mês")))
             + "    }\n")
    brazilian = ("class BrazilianLocale(Locale):\n    names = ['pt_br']\n\n"
                 f"    past = 'fazem {{0}}'\n{words}")
    repo = new_repo(tmp_path)
    repo.pull_request(2, "Add the Brazilian locale", {"locales.py": (
        f"class Locale:\n    names = []\n\n\n{brazilian}")}, squash=True)
    repo.pull_request(3, "Add the Tagalog locale", {"locales.py": (
        f"class Locale:\n    names = []\n\n\n{brazilian}\n\n{tagalog}")}, squash=True)

    def split(phrase: str) -> str:
        return ("class Locale:\n    names = []\n\n\n"
                "class PortugueseLocale(Locale):\n    names = ['pt']\n\n"
                f"    past = 'há {{0}}'\n{words}\n\n"
                "class BrazilianPortugueseLocale(PortugueseLocale):\n    names = ['pt_br']\n\n"
                f"    past = '{phrase} {{0}}'\n\n\n{tagalog}")

    repo.pull_request(4, "Add the Portuguese locale", {"locales.py": split("fazem")},
                      squash=True)
    repo.pull_request(5, "Fix the Brazilian locale's past", {"locales.py": split("faz")},
                      squash=True)
    mine(sqlite_db, repo)
    found = links(sqlite_db)
    assert (3, 5, "fixes") not in found and (4, 5, "fixes") not in found
    with GitBlame(repo.path) as blame:
        mover = repo.git("rev-parse", "HEAD^").strip()  # #4, the base of #5
        moved = next(number for number, line in enumerate(
            blame.show(mover, "locales.py").split("\n"), 1) if "fazem" in line)
        # Blame alone names the mover; looking past it, it says it cannot trace the line
        # rather than guess.
        assert blame.lines(mover, "locales.py", (LineRange(moved, moved),))[moved][0] == mover
        assert blame.lines(mover, "locales.py", (LineRange(moved, moved),),
                           frozenset({mover})) == {moved: (UNTRACED, "    past = 'fazem {0}'")}
