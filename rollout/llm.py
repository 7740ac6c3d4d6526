"""One client for every use of an OpenAI-compatible chat-completions endpoint.

The SDK is imported when a client is made: importing it takes half a second, which every
command and worker process would pay while most never talk to a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class LLMError(Exception):
    """The endpoint could not give a completion."""


class LLMRefused(LLMError):
    """The endpoint refused the request itself (a 4xx other than 408/409/429): sending it
    again gives the same answer, so the rollout ends with a recorded verdict."""

    def __init__(self, message: str, status: int, context_exceeded: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.context_exceeded = context_exceeded
        """The prompt (with the requested completion) did not fit the model's window."""


class LLMUnavailable(LLMError):
    """The endpoint kept failing (429, 5xx, timeouts, connection) after the SDK's retries:
    infrastructure, worth retrying the job later."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = field(default="none", repr=False)
    temperature: float = 0.0
    """Sampling temperature for every request (`LLM_TEMPERATURE`)."""
    max_tokens: int = 8192
    """Completion tokens per request (`LLM_MAX_TOKENS`): room for a 300-line file."""
    context_window: int | None = None
    """The model's window in tokens (`LLM_CONTEXT_WINDOW`); None: ask the server."""
    retries: int = 4
    """Further tries after a 408, 409, 429, 5xx, timeout or connection failure, by the SDK
    (exponential back-off with jitter, honouring `Retry-After`)."""
    timeout: float = 600.0
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
    finish_reason: str = "stop"
    """`stop`, `tool_calls`, or `length` when `max_tokens` cut the reply off."""
    reasoning: str = ""
    """The server's `reasoning_content` (thinking models), kept for the record."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _unavailable() -> tuple[type[Exception], ...]:
    """The SDK's errors that say the endpoint is away or overloaded, not that it refused."""
    import openai

    return (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError,
            openai.APITimeoutError, openai.ConflictError)


_CONTEXT_WORDS = re.compile(r"context length|context window|max_model_len|maximum context|"
                            r"too many tokens|prompt is too long|input is too long|"
                            r"maximum model length|exceeds the model", re.I)


class LLMClient:
    def __init__(self, config: LLMConfig) -> None:
        import openai

        self.config = config
        self._client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key,
                                     max_retries=config.retries, timeout=config.timeout)
        self._window: int | None | bool = False  # False: not asked yet

    def complete(self, messages: list[dict[str, Any]],
                 tools: list[dict[str, Any]] | None = None, *,
                 response_format: dict[str, Any] | None = None,
                 max_tokens: int | None = None) -> Completion:
        """One completion; ``response_format`` (e.g. JSON mode) is sent only when given, since
        not every OpenAI-compatible server accepts the field."""
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                  "temperature": self.config.temperature,
                                  "max_tokens": max_tokens or self.config.max_tokens}
        if tools:
            kwargs["tools"] = tools
        if response_format is not None:
            kwargs["response_format"] = response_format
        import openai

        try:
            response = self._client.chat.completions.create(**kwargs)
        except _unavailable() as exc:
            raise LLMUnavailable(f"LLM endpoint failed {self.config.retries + 1} times: "
                                 f"{_describe(exc)}") from exc
        except openai.APIStatusError as exc:
            text = _describe(exc)
            raise LLMRefused(f"LLM endpoint refused the request: {text}", exc.status_code,
                             bool(_CONTEXT_WORDS.search(text))) from exc
        return _completion(response)

    def context_window(self) -> int | None:
        """The model's window: `LLM_CONTEXT_WINDOW`, else what the server's `/v1/models`
        says (`max_model_len` on vLLM, `context_length` on some others), else None."""
        if self.config.context_window:
            return self.config.context_window
        if self._window is False:
            import openai

            self._window = None
            try:
                for entry in self._client.models.list():
                    if entry.id == self.config.model:
                        extra = entry.model_extra or {}
                        found = extra.get("max_model_len") or extra.get("context_length")
                        self._window = int(found) if found else None
            except (openai.OpenAIError, ValueError, TypeError) as exc:
                log.info("llm.no_context_window", error=_describe(exc))
        return self._window if isinstance(self._window, int) else None

    def answers(self, timeout: float = 5.0) -> bool:
        """Whether the server answers at all (one quick `/v1/models`, no retries): any HTTP
        answer counts, a refused connection or a timeout does not."""
        import openai

        try:
            self._client.with_options(max_retries=0, timeout=timeout).models.list()
        except (openai.APIConnectionError, openai.APITimeoutError):
            return False
        except openai.OpenAIError:
            return True
        return True

    def close(self) -> None:
        self._client.close()


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {exc}" if status else f"{type(exc).__name__}: {exc}"


def _completion(response: Any) -> Completion:
    if not getattr(response, "choices", None):
        raise LLMError("LLM endpoint answered without choices")
    choice = response.choices[0]
    message = choice.message
    calls = tuple(ToolCall(id=c.id or f"call_{i}", name=c.function.name,
                           arguments=c.function.arguments or "")
                  for i, c in enumerate(message.tool_calls or ()))
    usage = response.usage
    extra = getattr(message, "model_extra", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning") or ""
    return Completion(content=message.content or "", tool_calls=calls,
                      prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                      finish_reason=choice.finish_reason or "stop",
                      reasoning=reasoning if isinstance(reasoning, str) else "")
