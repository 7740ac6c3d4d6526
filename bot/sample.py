"""A small sample repository with a realistic pull-request history, for the demo and tests.

The project is `textkit`, a tiny text-utility library with pytest tests. Its history holds
what the miner looks for, each PR with its own tests:

- a feature over two PRs, the second a follow-up of the first by reference (#1 -> #2);
- a bug fix of #2 that names no PR at all and is found only by `git blame` (#4);
- two PRs that close the same issue (#3 and #5, issue #20), then a follow-up of #5 (#6);
- a documentation PR that belongs to no chain (#7).

Merge commits ("Merge pull request #N from ...") and squash merges ("Title (#N)") both appear.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = "textkit-dev"
NAME = "textkit"


@dataclass(frozen=True)
class SampleCommit:
    message: str
    files: dict[str, str]


@dataclass(frozen=True)
class SamplePR:
    number: int
    title: str
    body: str
    author: str
    branch: str
    commits: tuple[SampleCommit, ...]
    squash: bool = False
    labels: tuple[str, ...] = ()
    closes: tuple[int, ...] = ()


@dataclass
class SampleRepository:
    path: Path
    full_name: str = f"{OWNER}/{NAME}"
    prs: list[SamplePR] = field(default_factory=list)
    merge_commits: dict[int, str] = field(default_factory=dict)
    """PR number -> the commit on `main` that holds it."""
    issues: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Issue number -> (title, body)."""


BASE_FILES = {
    "README.md": "# textkit\n\nSmall text utilities.\n",
    "pyproject.toml": (
        '[project]\nname = "textkit"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["."]\n'
    ),
    "textkit/__init__.py": '"""Small text utilities."""\n',
    "textkit/words.py": (
        '"""Splitting text into words."""\n\n\n'
        "def words(text):\n"
        '    """The words of ``text``, split on white space."""\n'
        "    return text.split()\n"
    ),
    "tests/test_words.py": (
        "from textkit.words import words\n\n\n"
        "def test_words_split_on_white_space():\n"
        '    assert words("a  b\\tc\\n") == ["a", "b", "c"]\n'
    ),
}

SLUG_V1 = '''"""URL slugs from titles."""

import re

_UNSAFE = re.compile(r"[^a-z0-9 -]")


def slugify(title):
    """Lower-case ``title``, drop unsafe characters and join the words with dashes."""
    text = _UNSAFE.sub("", title.lower())
    return "-".join(text.split())
'''

SLUG_V2 = '''"""URL slugs from titles."""

import re

_UNSAFE = re.compile(r"[^a-z0-9 -]")


def slugify(title, max_length=50):
    """Lower-case ``title``, drop unsafe characters and join the words with dashes.

    Slugs longer than ``max_length`` characters are cut.
    """
    text = _UNSAFE.sub("", title.lower())
    slug = "-".join(text.split())
    return slug[:max_length]
'''

SLUG_V3 = SLUG_V2.replace("    return slug[:max_length]\n",
                          '    return slug[:max_length].rstrip("-")\n')

SLUG_TESTS_V1 = '''from textkit.slug import slugify


def test_words_are_joined_with_dashes():
    assert slugify("Hello World") == "hello-world"


def test_unsafe_characters_are_dropped():
    assert slugify("C'est la vie!") == "cest-la-vie"
'''

SLUG_TESTS_V2 = SLUG_TESTS_V1 + '''

def test_long_titles_are_cut():
    assert slugify("word " * 30).startswith("word-word-")
    assert len(slugify("word " * 30)) <= 50
    assert len(slugify("a" * 80, max_length=20)) == 20
'''

SLUG_TESTS_V3 = SLUG_TESTS_V2 + '''

def test_a_cut_slug_does_not_end_with_a_dash():
    assert slugify("hello world", max_length=6) == "hello"
'''

REPORT_V1 = '''"""Word frequency reports."""

from collections import Counter

from textkit.words import words


def frequencies(text):
    """How often each word occurs in ``text``, ignoring case."""
    return Counter(word.lower() for word in words(text))


def report(text, top=3):
    """The ``top`` most frequent words, one ``word: count`` line each."""
    return "\\n".join(f"{word}: {count}" for word, count in frequencies(text).most_common(top))
'''

REPORT_V2 = REPORT_V1.replace(
    '''def frequencies(text):
    """How often each word occurs in ``text``, ignoring case."""
    return Counter(word.lower() for word in words(text))
''',
    '''STOP_WORDS = frozenset({"a", "an", "and", "of", "the", "to"})


def frequencies(text):
    """How often each word occurs in ``text``, ignoring case and stop words."""
    return Counter(w for w in (word.lower() for word in words(text)) if w not in STOP_WORDS)
''')

REPORT_V3 = REPORT_V2.replace(
    '''    return "\\n".join(f"{word}: {count}" for word, count in frequencies(text).most_common(top))
''',
    '''    ranked = sorted(frequencies(text).items(), key=lambda item: (-item[1], item[0]))
    return "\\n".join(f"{word}: {count}" for word, count in ranked[:top])
''')

REPORT_TESTS_V1 = '''from textkit.report import frequencies, report


def test_frequencies_ignore_case():
    assert frequencies("Cat cat dog")["cat"] == 2


def test_report_lists_the_most_frequent_words():
    assert report("cat cat dog bird bird bird", top=2) == "bird: 3\\ncat: 2"
'''

REPORT_TESTS_V2 = REPORT_TESTS_V1 + '''

def test_stop_words_are_skipped():
    assert report("the cat and the hat", top=1) in {"cat: 1", "hat: 1"}
    assert "the" not in frequencies("The end of the story")
'''

REPORT_TESTS_V3 = REPORT_TESTS_V2 + '''

def test_ties_are_broken_alphabetically():
    assert report("pear apple fig", top=3) == "apple: 1\\nfig: 1\\npear: 1"
'''


def sample_prs() -> list[SamplePR]:
    return [
        SamplePR(1, "Slugify, part 1 of 2: basic slugs",
                 "Adds `textkit.slug.slugify` for titles in plain ASCII.\n\n"
                 "Part 1 of 2 of the slug work; length limits come next.",
                 "alice", "alice/slugify", (
                     SampleCommit("Add slugify for plain titles",
                                  {"textkit/slug.py": SLUG_V1}),
                     SampleCommit("Test slugify", {"tests/test_slug.py": SLUG_TESTS_V1}),
                 )),
        SamplePR(3, "Add a word frequency report",
                 "Closes #20.\n\nA `report()` that lists the most frequent words of a text.",
                 "bob", "bob/report", (
                     SampleCommit("Add word frequency report\n\nCloses #20.",
                                  {"textkit/report.py": REPORT_V1,
                                   "tests/test_report.py": REPORT_TESTS_V1}),
                 )),
        SamplePR(2, "Slugify, part 2 of 2: limit the length",
                 "Follow-up to #1: long titles made unwieldy URLs, so slugs are now cut "
                 "at `max_length` characters (50 by default).",
                 "alice", "alice/slug-length", (
                     SampleCommit("Cut long slugs at max_length\n\nFollow-up to #1.",
                                  {"textkit/slug.py": SLUG_V2,
                                   "tests/test_slug.py": SLUG_TESTS_V2}),
                 )),
        SamplePR(5, "Frequency report: skip stop words",
                 "Fixes #20: reports were dominated by words such as 'the' and 'a'.",
                 "carol", "carol/stop-words", (
                     SampleCommit("Skip stop words in frequency reports",
                                  {"textkit/report.py": REPORT_V2,
                                   "tests/test_report.py": REPORT_TESTS_V2}),
                 ), squash=True),
        SamplePR(4, "Fix trailing dash in shortened slugs",
                 "A slug cut at `max_length` could end with a dash, e.g. `hello-`.",
                 "dave", "dave/slug-dash", (
                     SampleCommit("Strip the dash a cut can leave",
                                  {"textkit/slug.py": SLUG_V3}),
                     SampleCommit("Add a regression test for cut slugs",
                                  {"tests/test_slug.py": SLUG_TESTS_V3}),
                 ), squash=True, labels=("bug",)),
        SamplePR(6, "Frequency report: break ties alphabetically",
                 "Follow-up to #5: words with equal counts came out in input order, so the "
                 "same text could give different reports.",
                 "carol", "carol/ties", (
                     SampleCommit("Break frequency ties alphabetically",
                                  {"textkit/report.py": REPORT_V3,
                                   "tests/test_report.py": REPORT_TESTS_V3}),
                 ), squash=True),
        SamplePR(7, "Docs: usage examples",
                 "Shows `slugify` and `report` in the README.",
                 "erin", "erin/docs", (
                     SampleCommit("Add usage examples to the README", {
                         "README.md": BASE_FILES["README.md"]
                         + "\n```python\nfrom textkit.slug import slugify\n"
                         "slugify('Hello World')  # 'hello-world'\n```\n"}),
                 ), squash=True),
    ]


class _Git:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = START

    def tick(self, hours: float = 1.0) -> None:
        self.clock += timedelta(hours=hours)

    def run(self, *args: str, author: str = "maintainer") -> str:
        stamp = self.clock.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@example.com",
            "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com",
            "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        }
        result = subprocess.run(["git", "-C", str(self.path), *args], env=env, check=True,
                                capture_output=True, text=True)
        return result.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self.run("add", "--", *files)

    def commit(self, message: str, author: str) -> str:
        self.run("commit", "-q", "-m", message, author=author)
        return self.run("rev-parse", "HEAD")


def build_sample_repository(path: Path) -> SampleRepository:
    """Create the sample repository at ``path`` (which must not exist or be empty)."""
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise FileExistsError(f"{path} is not empty")
    git = _Git(path)
    git.run("init", "-q", "-b", "main")
    git.write(BASE_FILES)
    git.commit("Initial import of textkit", "maintainer")
    sample = SampleRepository(path=path, issues={
        20: ("Word frequency report",
             "It would help to see which words a text uses most, without filler words."),
    })
    for pr in sample_prs():
        sample.merge_commits[pr.number] = _merge(git, pr)
        sample.prs.append(pr)
    return sample


def _merge(git: _Git, pr: SamplePR) -> str:
    git.tick(20)
    git.run("checkout", "-q", "-b", pr.branch)
    for commit in pr.commits:
        git.tick(1)
        git.write(commit.files)
        git.commit(commit.message, pr.author)
    git.run("checkout", "-q", "main")
    git.tick(2)
    if pr.squash:
        git.run("merge", "-q", "--squash", pr.branch)
        details = "\n".join(f"* {c.message.splitlines()[0]}" for c in pr.commits)
        sha = git.commit(f"{pr.title} (#{pr.number})\n\n{pr.body}\n\n{details}", pr.author)
    else:
        owner = pr.branch.split("/", 1)[0]
        message = f"Merge pull request #{pr.number} from {owner}/{pr.branch.split('/', 1)[1]}"
        git.run("merge", "-q", "--no-ff", "-m", f"{message}\n\n{pr.title}", pr.branch)
        sha = git.run("rev-parse", "HEAD")
    git.run("branch", "-q", "-D", pr.branch)
    return sha
