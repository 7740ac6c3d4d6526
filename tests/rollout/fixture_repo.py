"""A small real git repository with a three-PR chain; the third PR fixes a bug of the first.

PR 1 adds `mean` and `median` (median forgets to sort), PR 2 adds `variance` on top of
`mean`, PR 3 fixes `median` for unsorted and even-length input. Each PR is a branch merged
with a merge commit, so base (first parent), merge and the PR's own commits are all real.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chains.model import Commit, LinkKind, PullRequest

REPOSITORY = "octo/stats"

CORE = '''"""Tiny numeric helpers."""


def add(a, b):
    return a + b
'''
CORE_TEST = '''from calc.core import add


def test_add():
    assert add(2, 3) == 5
'''
STATS_MEAN = '''"""Summary statistics."""


def mean(values):
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)
'''
STATS_V1 = STATS_MEAN + '''

def median(values):
    if not values:
        raise ValueError("median of an empty sequence")
    return values[len(values) // 2]
'''
STATS_TEST_V1 = '''from calc.stats import mean, median


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_sorted():
    assert median([1, 2, 3]) == 2
'''
STATS_V2 = STATS_V1 + '''

def variance(values):
    centre = mean(values)
    return sum((v - centre) ** 2 for v in values) / len(values)
'''
STATS_TEST_V2 = STATS_TEST_V1.replace("mean, median", "mean, median, variance") + '''

def test_variance():
    assert variance([2, 4, 4, 4, 5, 5, 7, 9]) == 4.0
'''
STATS_V3 = STATS_V2.replace('''    return values[len(values) // 2]
''', '''    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 0:
        return (ordered[middle - 1] + ordered[middle]) / 2
    return ordered[middle]
''')
STATS_TEST_V3 = STATS_TEST_V2 + '''

def test_median_unsorted():
    assert median([3, 1, 2]) == 2


def test_median_even():
    assert median([4, 1, 3, 2]) == 2.5
'''

PR1_BODY = """Adds summary statistics to the calc package: the arithmetic mean and the median.

Implementation sketch:

```python
def median(values):
    return values[len(values) // 2]
```
"""
PR3_BODY = """`median` returns the wrong value when the input is not sorted, and it ignores the
even-length case.
+    ordered = sorted(values)
Closes #7."""


@dataclass(frozen=True)
class ChainRepo:
    path: Path
    prs: tuple[PullRequest, ...]
    kinds: tuple[LinkKind, ...]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit(repo: Path, files: dict[str, str], message: str) -> Commit:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return Commit(sha=_git(repo, "rev-parse", "HEAD"), message=message, author="dev")


def _pull_request(repo: Path, number: int, title: str, body: str,
                  commits: list[tuple[dict[str, str], str]], **extra: object) -> PullRequest:
    base = _git(repo, "rev-parse", "main")
    _git(repo, "checkout", "-q", "-b", f"pr-{number}")
    made = tuple(_commit(repo, files, message) for files, message in commits)
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}", f"pr-{number}")
    merge = _git(repo, "rev-parse", "HEAD")
    merged_at = datetime.fromtimestamp(int(_git(repo, "log", "-1", "--format=%ct", merge)), UTC)
    return PullRequest(repository=REPOSITORY, number=number, title=title, body=body,
                       author="dev", base_commit=base, merge_commit=merge, commits=made,
                       merged_at=merged_at, **extra)  # type: ignore[arg-type]


def make_chain_repo(root: Path) -> ChainRepo:
    repo = root / "stats"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    _commit(repo, {"calc/__init__.py": "", "calc/core.py": CORE,
                   "tests/__init__.py": "", "tests/test_core.py": CORE_TEST}, "Initial import")
    pr1 = _pull_request(repo, 1, "Add mean and median", PR1_BODY, [
        ({"calc/stats.py": STATS_MEAN}, "Add mean"),
        ({"calc/stats.py": STATS_V1, "tests/test_stats.py": STATS_TEST_V1},
         "Add median and tests for the statistics"),
    ])
    pr2 = _pull_request(repo, 2, "Add variance", "Population variance, built on mean (#1).", [
        ({"calc/stats.py": STATS_V2, "tests/test_stats.py": STATS_TEST_V2}, "Add variance"),
    ])
    _commit(repo, {"README": "calc: tiny numeric helpers\n"}, "Add a README")
    pr3 = _pull_request(repo, 3, "Fix median for unsorted and even-length input", PR3_BODY, [
        ({"calc/stats.py": STATS_V3, "tests/test_stats.py": STATS_TEST_V3},
         "Sort before taking the median; average the middle pair"),
    ], linked_issues=(7,), issue_texts={7: "median([3, 1, 2]) returns 1, expected 2"})
    return ChainRepo(repo, (pr1, pr2, pr3), (LinkKind.REFERENCES, LinkKind.FIXES))
