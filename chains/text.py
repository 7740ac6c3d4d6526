"""What PR text says about other PRs and issues: references, closing keywords, fix signals."""

from __future__ import annotations

import re
from dataclasses import dataclass

CLOSING = r"(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)"
_NUMBER_REF = re.compile(
    r"(?<![\w/#])(?:(?P<owner>[A-Za-z0-9][\w.-]*)/(?P<name>[\w.-]+))?#(?P<number>\d+)\b")
_URL_REF = re.compile(
    r"https?://[^/\s]+/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/(?:pull|issues)/(?P<number>\d+)")
_CLOSING_REF = re.compile(
    rf"\b{CLOSING}\s*:?\s+(?:(?P<owner>[\w.-]+)/(?P<name>[\w.-]+))?#(?P<number>\d+)\b", re.I)
_FOLLOW_UP = re.compile(r"\b(?:follow[- ]?up|builds? (?:on|upon)|continues?|part \d+ of)\b",
                        re.I)
_REVERT_TITLE = re.compile(r'^Revert\s+"(?P<title>.+)"\s*$', re.I)
_REVERTS_COMMIT = re.compile(r"\brevert(?:s|ed|ing)?\s+(?:commit\s+)?"
                             r"(?P<sha>(?=[0-9]*[a-f])(?=[a-f]*[0-9])[0-9a-f]{7,40})\b", re.I)
_RESTORE = re.compile(r"^\s*(?:restore[sd]?|re-?add(?:s|ed)?|re-?introduce[sd]?|bring back|"
                      r"brings back|reinstate[sd]?|put back|undo (?:the )?removal)\b", re.I)
_MERGE_MESSAGE = re.compile(r"^Merge (?:pull request #\d+ from |(?:remote-tracking )?branch"
                            r"(?:es)? |tag |commit )")
_PART = re.compile(r"(?P<prefix>.*?)[\s,:;(-]*\bpart\s+(?P<n>\d+)\s*(?:of|/)\s*(?P<m>\d+)\b",
                   re.I)
_FIX_WORDS = re.compile(r"\b(?:fix(?:e[sd]|ing)?|bug(?:fix)?|regression|revert(?:s|ed)?|"
                        r"hotfix|broken|crash(?:es)?)\b", re.I)
_CONVENTIONAL_FIX = re.compile(r"^\s*(?:fix|revert)(?:\([^)]*\))?!?:", re.I)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


@dataclass(frozen=True)
class Mention:
    number: int
    closing: bool
    snippet: str
    """The words around the mention, for evidence."""


def _same_repo(match: re.Match[str], repository: str) -> bool:
    owner, name = match.group("owner"), match.group("name")
    return owner is None or f"{owner}/{name}".lower() == repository.lower()


def mentions(text: str, repository: str) -> list[Mention]:
    """Every number this text names in its own repository, closing or not, first first."""
    text = _CODE.sub(" ", text or "")
    closing = {int(m.group("number")) for m in _CLOSING_REF.finditer(text)
               if _same_repo(m, repository)}
    found: dict[int, tuple[int, Mention]] = {}
    for pattern in (_NUMBER_REF, _URL_REF):
        for match in pattern.finditer(text):
            if not _same_repo(match, repository):
                continue
            number = int(match.group("number"))
            if number not in found or match.start() < found[number][0]:
                found[number] = (match.start(), Mention(number, number in closing,
                                                        snippet(text, match.start())))
    return [mention for _, mention in sorted(found.values(), key=lambda item: item[0])]


def snippet(text: str, at: int, width: int = 70) -> str:
    """The words around position ``at`` on its line, cut at word boundaries ("…" marks a
    cut), on one line."""
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at)
    line_end = line_end if line_end != -1 else len(text)
    start, end = max(line_start, at - width // 2), min(line_end, at + width)
    if start > line_start:
        space = text.find(" ", start, at)
        start = space + 1 if space != -1 else start
    if end < line_end:
        space = text.rfind(" ", at, end)
        end = space if space != -1 else end
    words = " ".join(text[start:end].split())
    return ("…" if start > line_start else "") + words + ("…" if end < line_end else "")


def is_follow_up(text: str) -> bool:
    return bool(_FOLLOW_UP.search(text or ""))


def reverted_title(title: str) -> str | None:
    match = _REVERT_TITLE.match(title or "")
    return match.group("title") if match else None


def reverted_commits(text: str) -> list[str]:
    """Commit names a revert gives: "This reverts commit <sha>.", "reverting 1a2b3c4"."""
    return [m.group("sha") for m in _REVERTS_COMMIT.finditer(text or "")]


def is_restore(title: str) -> bool:
    """A title that says it puts back something removed ("Restore X", "Re-add Y")."""
    return bool(_RESTORE.match(title or ""))


_BOTS = re.compile(r"\[bot\]$|^(?:dependabot(?:-preview)?|renovate|pre-commit-ci|"
                   r"github-actions|greenkeeper|pyup-bot|snyk-bot|allcontributors)\b", re.I)


def is_bot(author: str) -> bool:
    """A PR opened by a bot (dependency updates, hook updates, release automation)."""
    return bool(_BOTS.search((author or "").strip()))


_CHECKERS = r"(?:flake8|ruff|pylint|pyflakes|pycodestyle|mypy|pyright|pyre|pytype)\b"
_SWEEP = re.compile(
    r"^\W*style\b|🎨"
    r"|\b(?:apply|run|use|add|adopt|migrate to|switch to|enable|introduce)\s+(?:the\s+)?"
    r"(?:black|ruff|isort|flake8|pyupgrade|pre-commit|autopep8|yapf|mypy|pyright)\b"
    r"|\b(?:add(?:s|ed|ing)?|improve[sd]?)\s+(?:type\s+(?:hints|annotations)|typing)\b"
    r"|\b(?:reformat(?:s|ted|ting)?|code style|readability (?:cleanup|pass|improvements?)"
    r"|lint(?:ing)? (?:fixes|cleanup))\b"
    r"|\b(?:fix(?:e[sd]|ing)?|silence[sd]?|address(?:e[sd])?)\s+(?:\w+\s+)?"
    r"(?:flake8|lint(?:er|ing)?|ruff|pylint|pyflakes|pycodestyle|pep ?8|isort|black|pre-commit"
    r"|mypy|pyright)"
    r"(?:\s+(?:issues?|errors?|warnings?|violations?|complaints?|findings?))?\s*(?:$|[(.,;:!])"
    r"|\b(?:found|reported|flagged|caught)\s+by\s+(?:\w+\s+)?" + _CHECKERS +
    r"|\bcompatib\w*\s+with\s+(?:the\s+)?(?:latest\s+|new(?:er|est)?\s+)?" + _CHECKERS,
    re.I)


def is_sweep(title: str) -> bool:
    """A title that says the PR restyles code across the project (a formatter or linter
    adopted, type hints added, a readability pass, what a linter or type checker reported
    fixed: "Fix flake8 issues", "Fix root logger use found by ruff", "Fix compatibility with
    pyright 1.1.394" are sweeps, not repairs): no one's work, blame looks through it."""
    return bool(_SWEEP.search(title or ""))


_RELEASE = re.compile(
    r"^\W*(?:(?:prepare|preparing|prep|proposed|final|bump(?:ed|s)?|cut|tag)\s+)?"
    r"(?:(?:the\s+)?(?:release|releasing|version)\s+)?(?:(?:to|for)\s+)?"
    r"v?\d+(?:\.\d+)+[\w.+-]*(?:\s+release)?\W*$", re.I)


def is_release(title: str) -> bool:
    """A title that only names a version ("Release 1.20.0", "Proposed 2.8.0", "Bump version
    to 3.1"): a release PR lists the issues of its changelog, it does not work on them."""
    return bool(_RELEASE.match(title or ""))


_REVERT = re.compile(r"^Revert(?:ing|s|ed)?\b|^\W*revert(?:\([^)]*\))?!?:"
                     r"|\bThis reverts commit [0-9a-f]{7,40}", re.I | re.M)


def is_revert(message: str) -> bool:
    """A revert: `Revert "…"`, `revert: …`, or git's "This reverts commit <sha>"."""
    return bool(_REVERT.search(message or ""))


def is_merge_message(message: str) -> bool:
    """A merge git or GitHub wrote ("Merge pull request #N from …", "Merge branch 'x'")."""
    return bool(_MERGE_MESSAGE.match(message or ""))


def series(title: str) -> tuple[str, int] | None:
    """("normalised title prefix", part number) for titles such as "Slugify, part 2 of 3"."""
    if "part" not in (title or "").lower():
        return None  # most titles: skip the pattern's slow scan
    match = _PART.search(title)
    if match is None:
        return None
    prefix = " ".join(re.sub(r"[^\w\s]", " ", match.group("prefix").lower()).split())
    return (prefix, int(match.group("n"))) if prefix else None


def is_fix(title: str, labels: tuple[str, ...] = (), issue_texts: tuple[str, ...] = ()) -> bool:
    """A fix by its title, a label, or a linked issue's text."""
    if _CONVENTIONAL_FIX.match(title or "") or _FIX_WORDS.search(title or ""):
        return True
    if any(_FIX_WORDS.search(label) for label in labels):
        return True
    return any(_FIX_WORDS.search(text) for text in issue_texts)


_WORD = re.compile(r"[a-z_][a-z0-9_]{2,}")
_URL = re.compile(r"https?://\S+")
_TRAILER = re.compile(r"^\s*[A-Za-z][A-Za-z-]*-by:.*$", re.M)
_TEMPLATE = re.compile(r"<!--.*?-->", re.S)
_CHECKLIST = re.compile(r"^\s*[-*] \[[ xX]\].*$", re.M)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s.*$", re.M)
_NOT_TOPICS = frozenset({
    "the", "and", "for", "with", "from", "into", "onto", "this", "that", "these", "those",
    "there", "their", "then", "than", "when", "where", "which", "while", "who", "whom",
    "whose", "what", "why", "how", "are", "was", "were", "been", "being", "has", "have",
    "had", "having", "does", "did", "doing", "but", "not", "nor", "also", "just", "only",
    "any", "all", "some", "each", "every", "other", "such", "more", "most", "less", "very",
    "can", "could", "should", "would", "will", "shall", "may", "might", "must", "our",
    "ours", "your", "yours", "its", "it's", "they", "them", "you", "she", "his", "her",
    "him", "use", "uses", "used", "using", "add", "adds", "added", "adding", "fix", "fixes",
    "fixed", "fixing", "bug", "bugs", "issue", "issues", "pull", "request", "requests",
    "merge", "merged", "commit", "commits", "change", "changes", "changed", "make", "makes",
    "made", "new", "now", "one", "two", "see", "via", "per", "get", "gets", "set", "sets",
    "out", "off", "too", "yet"
})


def description(title: str, body: str | None) -> str:
    """A PR's own description, its title and body as one text (what `topic_words` reads)."""
    return f"{title}\n{body or ''}"


def topic_words(text: str) -> frozenset[str]:
    """The words a PR's title and description are about: lowercase words of three or more
    letters, without links, commit trailers (`Co-authored-by: …`), the headings, checklists and
    comments of PR templates, or the function words and PR vocabulary every description shares."""
    text = text or ""
    for pattern in (_URL, _TRAILER, _TEMPLATE, _CHECKLIST, _HEADING):
        text = pattern.sub(" ", text)
    return frozenset(_WORD.findall(text.lower())) - _NOT_TOPICS
