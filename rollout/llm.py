"""One client for every use of an OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import openai
import structlog

log = structlog.get_logger(__name__)


class LLMError(Exception):
    """The endpoint refused the request (bad request, auth, unknown model)."""


class LLMUnavailable(LLMError):
    """The endpoint kept failing (429, 5xx, connection) after every retry: infrastructure."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = field(default="none", repr=False)
    temperature: float = 0.0
    """Sampling temperature for every request."""
    max_tokens: int = 2048
    """Completion tokens per request."""
    retries: int = 4
    """Further tries after a 429, 5xx or connection failure."""
    backoff: float = 1.0
    """Seconds before the first retry; doubles each time."""
    timeout: float = 120.0
    """Seconds one request may take."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """JSON text, exactly as the model produced it (it may not parse)."""


@dataclass(frozen=True)
class Completion:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError,
              openai.APITimeoutError)


class LLMClient:
    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        # Retries are ours so that they are logged and bounded by our settings.
        self._client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key,
                                     max_retries=0, timeout=config.timeout)

    def complete(self, messages: list[dict[str, Any]],
                 tools: list[dict[str, Any]] | None = None, *,
                 response_format: dict[str, Any] | None = None) -> Completion:
        """One completion; ``response_format`` (e.g. JSON mode) is sent only when given, since
        not every OpenAI-compatible server accepts the field."""
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                  "temperature": self.config.temperature,
                                  "max_tokens": self.config.max_tokens}
        if tools:
            kwargs["tools"] = tools
        if response_format is not None:
            kwargs["response_format"] = response_format
        delay = self.config.backoff
        for attempt in range(self.config.retries + 1):
            try:
                response = self._client.chat.completions.create(**kwargs)
                return _completion(response)
            except _RETRYABLE as exc:
                if attempt == self.config.retries:
                    raise LLMUnavailable(f"LLM endpoint failed {attempt + 1} times: "
                                         f"{_describe(exc)}") from exc
                log.warning("llm.retry", attempt=attempt + 1, error=_describe(exc), delay=delay)
                time.sleep(delay)
                delay *= 2
            except openai.APIStatusError as exc:
                raise LLMError(f"LLM endpoint refused the request: {_describe(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._client.close()


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {exc}" if status else f"{type(exc).__name__}: {exc}"


def _completion(response: Any) -> Completion:
    if not getattr(response, "choices", None):
        raise LLMError("LLM endpoint answered without choices")
    message = response.choices[0].message
    calls = tuple(ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
                  for c in (message.tool_calls or ()))
    usage = response.usage
    return Completion(content=message.content or "", tool_calls=calls,
                      prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
