"""Keeping a long conversation inside the model's window.

Before each call the prompt's size is estimated from the server's own count of the previous
prompt plus what was added since (characters, at the ratio the server's counts show). When it
would pass a safe share of the window (less the reply's room), older tool observations are
condensed: their head and tail are kept and the middle replaced by a marker saying how much
was left out. Requests, feedback and the model's own turns are never touched, nor the newest
observations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SAFE_SHARE = 0.9
"""Of the window less the reply's room, the share a prompt may fill."""
KEPT_RECENT = 4
"""The newest messages, never condensed."""
PASSES = (2_000, 400, 0)
"""Characters an old observation keeps, pass after pass (at last only the marker)."""
CHARS_PER_TOKEN = 3.0
"""Until the server has counted a prompt: a cautious guess (code runs 3–4 per token)."""
MIN_REPLY = 1_024
"""The fewest completion tokens a request asks for."""


class ContextExceeded(Exception):
    """The conversation no longer fits the window, even condensed."""


@dataclass
class Usage:
    """Tokens as the server counted them."""

    calls: int = 0
    prompt_billed: int = 0
    """Prompt tokens over every call (each call re-sends the conversation)."""
    completion: int = 0
    """Completion tokens over every call: what the rollout made the model write."""
    last_prompt: int = 0
    last_completion: int = 0

    def add(self, prompt: int, completion: int) -> None:
        self.calls += 1
        self.prompt_billed += prompt
        self.completion += completion
        self.last_prompt, self.last_completion = prompt, completion

    @property
    def billed(self) -> int:
        return self.prompt_billed + self.completion

    @property
    def length(self) -> int:
        """The conversation's length at the last call: its prompt plus its reply."""
        return self.last_prompt + self.last_completion


@dataclass
class Window:
    """The window of one model and what the conversation's prompts weighed."""

    tokens: int | None
    reply: int
    """Completion tokens a request asks for (`max_tokens`)."""
    originals: dict[int, str] = field(default_factory=dict)
    """Condensed observations' full text, by position in the conversation."""
    _ratio: float = field(default=1 / CHARS_PER_TOKEN)
    _sized: int = 0
    """Characters of the prompt the server counted last, and its count."""
    _counted: int = 0
    sent: int = 0
    """Characters of the prompt :meth:`fit` passed last."""
    _measured: tuple[int, int] = (0, 0)
    """(messages measured, their characters), so each step measures only what it added."""
    _tools: int | None = None
    """Characters of the tool schemas (the same on every call), measured once."""

    def observe(self, prompt_chars: int, prompt_tokens: int) -> None:
        """The server counted ``prompt_tokens`` for a prompt of ``prompt_chars``."""
        if prompt_tokens > 0 and prompt_chars > 0:
            self._ratio = prompt_tokens / prompt_chars
            self._sized, self._counted = prompt_chars, prompt_tokens

    def estimate(self, chars: int) -> int:
        if self._counted and chars >= self._sized:
            return self._counted + int((chars - self._sized) * self._ratio) + 1
        return int(chars * self._ratio) + 1

    def fit(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """Condense old observations in place until the prompt fits; returns the completion
        tokens the request may ask for. Raises ContextExceeded when nothing more can go."""
        if self._tools is None:
            self._tools = size([tools])
        fixed = self._tools
        for keep in (None, *PASSES):
            if keep is not None:
                condense(messages, keep, self.originals)
                self._measured = (0, 0)
            self.sent = self._chars(messages) + fixed
            if self.tokens is None:
                return self.reply
            prompt = self.estimate(self.sent)
            room = self.tokens - prompt
            if prompt <= (self.tokens - self.reply) * SAFE_SHARE:
                return self.reply
            if keep == PASSES[-1] and room >= MIN_REPLY * 2:
                return min(self.reply, int(room * SAFE_SHARE))
        raise ContextExceeded(f"the conversation needs about {prompt} tokens of a "
                              f"{self.tokens}-token window even with old observations "
                              "condensed")


    def _chars(self, messages: list[dict[str, Any]]) -> int:
        count, chars = self._measured
        if count > len(messages):
            count, chars = 0, 0
        chars += sum(size(m) for m in messages[count:])
        self._measured = (len(messages), chars)
        return chars


def size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False))


def condense(messages: list[dict[str, Any]], keep: int, originals: dict[int, str]) -> None:
    """Shorten every tool observation older than the newest KEPT_RECENT messages to ``keep``
    characters of its full text (head and tail); ``originals`` keeps the full texts."""
    for at, message in enumerate(messages[:-KEPT_RECENT]):
        if message.get("role") != "tool" or not isinstance(message.get("content"), str):
            continue
        text = originals.get(at, message["content"])
        if len(text) <= keep + 100:
            continue
        originals[at] = text
        head, tail = text[:keep // 2], text[len(text) - keep // 2:] if keep else ""
        left_out = len(text) - len(head) - len(tail)
        marker = f"[… {left_out} characters of old output left out to fit the context window …]"
        message["content"] = f"{head}\n{marker}\n{tail}" if keep else marker
