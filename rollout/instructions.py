"""Instructions that read like a maintainer's request and never leak the patch.

Two writers: a deterministic template from the PR's own text (code blocks and patch
fragments stripped), and an LLM writer whose every draft passes a leakage check. Besides
copied code, the check refuses names the patch introduces and values the hidden tests assert,
unless the PR's own human text already gives them: the agent may be told what a maintainer
told, never what only the solution knows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import structlog

from chains.diff import parse_diff
from chains.model import PullRequest
from chains.paths import is_test_path
from rollout.gitdiff import added_code_lines
from rollout.llm import LLMClient, LLMRefused

log = structlog.get_logger(__name__)

MAX_INSTRUCTION_CHARS = 2_000

_LINK_PHRASES = {
    "references": "It follows up on the previous change.",
    "shares_issue": "It continues work on the same issue as the previous change.",
    "fixes": "It fixes a problem introduced by the previous change.",
    "same_area": "It touches the same area as the previous change.",
}
_FENCED = re.compile(r"```.*?(```|$)", re.DOTALL)
_PATCH_LINE = re.compile(r"^\s*(diff --git|@@|\+\+\+|---|[+-]\S|[+-]( {2,}|\t))")
_INDENTED = re.compile(r"^(    |\t)\S")


class InstructionLeak(Exception):
    """An instruction gives the solution away; the message says how."""


class InstructionWriter(Protocol):
    def instruction(self, pr: PullRequest, link_kind: str | None, patch: str) -> str: ...

    def objective(self, prs: Sequence[PullRequest], patch: str = "") -> str: ...


def check_leakage(text: str, patch: str, threshold: float, human_text: str = "") -> None:
    """Raise InstructionLeak when ``text`` carries code from ``patch`` (gold then test patch),
    or a name or asserted value from it that ``human_text`` (the PR's title, body and issue
    texts) does not already give."""
    if "```" in text or re.search(r"^(diff --git|@@ )", text, re.MULTILINE):
        raise InstructionLeak("contains a code block or diff hunk")
    _check_copied_lines(text, patch, threshold)
    # Longest first, so the message names the most telling token ("Hello, Ada!", not "Ada").
    for token in sorted(_new_identifiers(patch), key=len, reverse=True):
        if _names(text, token) and not _names(human_text, token):
            raise InstructionLeak(f"names {token!r}, which only the patch introduces")
    for token in sorted(_asserted_literals(patch), key=len, reverse=True):
        if _names(text, token) and not _names(human_text, token):
            raise InstructionLeak(f"gives {token!r}, a value the hidden tests assert")


def human_text_of(pr: PullRequest) -> str:
    """What people wrote about the change: title, description and linked issue texts."""
    return "\n".join([pr.title, pr.body, *pr.issue_texts.values()])


def _check_copied_lines(text: str, patch: str, threshold: float) -> None:
    normalised = _squash(text)
    lines = added_code_lines(patch)
    if not lines:
        return
    copied = [line for line in lines if _squash(line) in normalised]
    long_copies = [line for line in copied if len(line) >= 30]
    if long_copies:
        raise InstructionLeak(f"copies an added line of the patch: {long_copies[0][:60]!r}")
    share = len(copied) / len(lines)
    if share > threshold:
        raise InstructionLeak(f"copies {share:.0%} of the patch's added lines")


_DEFINITION = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)")
_CONSTANT = re.compile(r"^([A-Z][A-Z0-9_]*)\s*(?::[^=]*)?=(?!=)")
_ASSERTION = re.compile(r"^\s*assert\b|\bassert[A-Z]\w*\s*\(")
_STRING = re.compile(r"""("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')""")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_MIN_TOKEN = 3
"""Shorter names and strings are too common in prose to count as a leak."""


def _new_identifiers(patch: str) -> list[str]:
    """Functions, classes, methods and module-level constants the code part of the patch
    defines on added lines and did not define on removed ones (a changed signature is not
    new)."""
    found: list[str] = []
    for diff in parse_diff(patch, with_lines=True):
        if is_test_path(diff.path):
            continue
        old = {name for line in diff.removed_lines for name in _defined(line)}
        found += [name for line in diff.added_lines for name in _defined(line) if name not in old]
    return list(dict.fromkeys(found))


def _defined(line: str) -> list[str]:
    names = [m.group(1) for m in (_DEFINITION.match(line), _CONSTANT.match(line)) if m]
    return [n for n in names if len(n) >= _MIN_TOKEN and not n.startswith("__")]


def _asserted_literals(patch: str) -> list[str]:
    """String literals (3+ characters) and numbers other than 0 and 1 on the assertion lines
    the test part of the patch adds: the expected values an agent should work out."""
    found: list[str] = []
    for diff in parse_diff(patch, with_lines=True):
        if not is_test_path(diff.path):
            continue
        for line in diff.added_lines:
            if not _ASSERTION.search(line):
                continue
            strings = [m.group(1)[1:-1] for m in _STRING.finditer(line)]
            numbers = _NUMBER.findall(_STRING.sub(" ", line))
            found += [s for s in strings if len(s.strip()) >= _MIN_TOKEN]
            found += [n for n in numbers if float(n) not in (0.0, 1.0)]
    return list(dict.fromkeys(found))


def _names(text: str, token: str) -> bool:
    """Whether ``text`` holds ``token`` case-sensitively as a whole word; a number inside a
    longer one (2 in 2.5 or 12) does not count."""
    if token[:1].isdigit():
        pattern = rf"(?<![\w.]){re.escape(token)}(?!\.?\d|\w)"
    else:
        pattern = rf"(?<!\w){re.escape(token)}(?!\w)"
    return re.search(pattern, text) is not None


def strip_solution(text: str, patch: str) -> str:
    """The PR text without code blocks, patch fragments or lines the patch adds."""
    text = _FENCED.sub("", text.replace("\r\n", "\n"))
    added = {_squash(line) for line in added_code_lines(patch, min_length=8)}
    kept: list[str] = []
    for line in text.split("\n"):
        if _PATCH_LINE.match(line) or _INDENTED.match(line):
            continue
        if any(code in _squash(line) for code in added):
            continue
        kept.append(line.rstrip())
    cleaned = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return cleaned[:MAX_INSTRUCTION_CHARS]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class TemplateWriter:
    """Deterministic instructions from the PR's title, body and linked issues."""

    def instruction(self, pr: PullRequest, link_kind: str | None, patch: str) -> str:
        parts = [strip_solution(pr.title, patch) or f"Change #{pr.number}"]
        body = strip_solution(pr.body, patch)
        if body:
            parts.append(body)
        for number in pr.linked_issues:
            issue = strip_solution(pr.issue_texts.get(number, ""), patch)
            if issue:
                parts.append(f"Issue #{number}:\n{issue}")
        if link_kind in _LINK_PHRASES:
            parts.append(_LINK_PHRASES[link_kind])
        return "\n\n".join(parts)[:MAX_INSTRUCTION_CHARS]

    def objective(self, prs: Sequence[PullRequest], patch: str = "") -> str:
        """Made only of the PRs' titles, so ``patch`` is not needed to keep it clean."""
        titles = [pr.title.strip().rstrip(".") for pr in prs]
        steps = "; then ".join(titles)
        return (f"Evolve {prs[0].repository} through {len(prs)} related changes: {steps}. "
                "The requests arrive one at a time; each builds on the code you leave behind, "
                "and earlier behaviour must keep working.")


_WRITER_PROMPT = """You write task instructions for a software engineer, as a maintainer would
write them. You are given a merged pull request (title, description, linked issues) and its patch.
Write a request of a few sentences that says WHAT must change and WHY, observable behaviour only.
Never include code, code blocks, diff lines, or a file-by-file recipe. Do not name functions,
classes or constants the patch introduces, nor quote values its tests check, unless the pull
request's own text already does. Answer with the instruction text only."""

_OBJECTIVE_PROMPT = """Given the titles and descriptions of a sequence of related pull requests,
state in two sentences the overall functional goal they serve together. No code, and no names or
values that the descriptions do not give. Answer with the goal only."""


class LLMWriter:
    """Instructions drafted by an LLM; a leaking draft is rejected and retried, then templated."""

    def __init__(self, client: LLMClient, attempts: int = 3, leak_threshold: float = 0.2) -> None:
        self.client = client
        self.attempts = attempts
        self.leak_threshold = leak_threshold
        self.template = TemplateWriter()
        self.rejected: list[tuple[int | None, str, str]] = []
        """(PR, or None for the chain's objective; draft; reason) of every refused draft."""
        self.tokens = 0

    def instruction(self, pr: PullRequest, link_kind: str | None, patch: str) -> str:
        issues = "\n".join(f"Issue #{n}: {pr.issue_texts.get(n, '')}" for n in pr.linked_issues)
        prompt = (f"Title: {pr.title}\n\nDescription:\n{pr.body}\n\n{issues}\n\n"
                  f"Relation to the previous change: {link_kind or 'first change'}\n\n"
                  f"Patch (for your understanding only, never to be quoted):\n{patch[:12_000]}")
        draft = self._draft(_WRITER_PROMPT, prompt, patch, human_text_of(pr), pr.number)
        if draft is None:
            log.info("instruction.template_fallback", pr=pr.number)
            return self.template.instruction(pr, link_kind, patch)
        return draft

    def objective(self, prs: Sequence[PullRequest], patch: str = "") -> str:
        """``patch`` is the chain's combined patch; the objective must not leak it either."""
        summary = "\n\n".join(f"#{pr.number} {pr.title}\n{pr.body[:1_000]}" for pr in prs)
        people = "\n".join(human_text_of(pr) for pr in prs)
        draft = self._draft(_OBJECTIVE_PROMPT, summary, patch, people, None)
        if draft is None:
            log.info("objective.template_fallback", prs=[pr.number for pr in prs])
            return self.template.objective(prs, patch)
        return draft

    def _draft(self, system: str, prompt: str, patch: str, people: str,
               pr: int | None) -> str | None:
        """A draft that passes the leakage check, or None after ``attempts`` refused ones."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        for _ in range(self.attempts):
            try:
                answer = self.client.complete(messages)
            except LLMRefused as exc:  # asking again gets the same answer: the template writes
                log.warning("instruction.refused", pr=pr, error=str(exc)[:200])
                self.rejected.append((pr, "", f"the server refused the request: {exc}"))
                return None
            self.tokens += answer.tokens
            draft = answer.content.strip()
            try:
                if not draft:
                    raise InstructionLeak("is empty")
                check_leakage(draft, patch, self.leak_threshold, people)
            except InstructionLeak as exc:
                log.info("instruction.rejected", pr=pr, reason=str(exc))
                self.rejected.append((pr, draft, str(exc)))
                messages += [{"role": "assistant", "content": draft},
                             {"role": "user", "content": f"Rejected: it {exc}. Rewrite it "
                              "without any code, name or test value from the patch."}]
                continue
            return draft[:MAX_INSTRUCTION_CHARS]
        return None
