"""Instructions that read like a maintainer's request and never leak the patch.

Two writers: a deterministic template from the PR's own text (code blocks and patch
fragments stripped), and an LLM writer whose every draft passes a leakage check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import structlog

from chains.model import PullRequest
from rollout.gitdiff import added_code_lines
from rollout.llm import LLMClient

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

    def objective(self, prs: Sequence[PullRequest]) -> str: ...


def check_leakage(text: str, patch: str, threshold: float) -> None:
    """Raise InstructionLeak when ``text`` carries code from ``patch``."""
    if "```" in text or re.search(r"^(diff --git|@@ )", text, re.MULTILINE):
        raise InstructionLeak("contains a code block or diff hunk")
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

    def objective(self, prs: Sequence[PullRequest]) -> str:
        titles = [pr.title.strip().rstrip(".") for pr in prs]
        steps = "; then ".join(titles)
        return (f"Evolve {prs[0].repository} through {len(prs)} related changes: {steps}. "
                "The requests arrive one at a time; each builds on the code you leave behind, "
                "and earlier behaviour must keep working.")


_WRITER_PROMPT = """You write task instructions for a software engineer, as a maintainer would
write them. You are given a merged pull request (title, description, linked issues) and its patch.
Write a request of a few sentences that says WHAT must change and WHY, observable behaviour only.
Never include code, code blocks, diff lines, or a file-by-file recipe. Answer with the instruction
text only."""

_OBJECTIVE_PROMPT = """Given the titles and descriptions of a sequence of related pull requests,
state in two sentences the overall functional goal they serve together. No code. Answer with the
goal only."""


class LLMWriter:
    """Instructions drafted by an LLM; a leaking draft is rejected and retried, then templated."""

    def __init__(self, client: LLMClient, attempts: int = 3, leak_threshold: float = 0.2) -> None:
        self.client = client
        self.attempts = attempts
        self.leak_threshold = leak_threshold
        self.template = TemplateWriter()
        self.rejected: list[tuple[int, str, str]] = []
        """(PR, draft, reason) of every draft the leakage check refused."""
        self.tokens = 0

    def instruction(self, pr: PullRequest, link_kind: str | None, patch: str) -> str:
        issues = "\n".join(f"Issue #{n}: {pr.issue_texts.get(n, '')}" for n in pr.linked_issues)
        prompt = (f"Title: {pr.title}\n\nDescription:\n{pr.body}\n\n{issues}\n\n"
                  f"Relation to the previous change: {link_kind or 'first change'}\n\n"
                  f"Patch (for your understanding only, never to be quoted):\n{patch[:12_000]}")
        messages = [{"role": "system", "content": _WRITER_PROMPT},
                    {"role": "user", "content": prompt}]
        for _ in range(self.attempts):
            answer = self.client.complete(messages)
            self.tokens += answer.tokens
            draft = answer.content.strip()
            try:
                if not draft:
                    raise InstructionLeak("empty instruction")
                check_leakage(draft, patch, self.leak_threshold)
            except InstructionLeak as exc:
                log.info("instruction.rejected", pr=pr.number, reason=str(exc))
                self.rejected.append((pr.number, draft, str(exc)))
                messages += [{"role": "assistant", "content": draft},
                             {"role": "user", "content": f"Rejected: it {exc}. Rewrite it "
                              "without any code from the patch."}]
                continue
            return draft[:MAX_INSTRUCTION_CHARS]
        log.info("instruction.template_fallback", pr=pr.number)
        return self.template.instruction(pr, link_kind, patch)

    def objective(self, prs: Sequence[PullRequest]) -> str:
        summary = "\n\n".join(f"#{pr.number} {pr.title}\n{pr.body[:1_000]}" for pr in prs)
        answer = self.client.complete([{"role": "system", "content": _OBJECTIVE_PROMPT},
                                       {"role": "user", "content": summary}])
        self.tokens += answer.tokens
        text = answer.content.strip()
        if not text or "```" in text:
            return self.template.objective(prs)
        return text[:MAX_INSTRUCTION_CHARS]
