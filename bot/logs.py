"""structlog set-up: JSON lines in production, readable console output in development.

Every log line passes through :class:`Redactor`, which replaces known secret values and
anything shaped like a token or a private key, wherever in the event it appears.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# Shapes of credentials that must never reach a log line even when we do not know the value.
SECRET_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
               re.S),
    re.compile(r"\b(ghs|ghp|gho|ghu|ghr|github_pat)_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),  # JWT
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/-]{16,}=*"),
)
SECRET_KEYS = re.compile(r"(?i)(secret|token|password|private_key|api_key|authorization)")


class Redactor:
    """A structlog processor that scrubs secrets from every value of an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len,
                                    reverse=True))

    def __call__(self, logger: Any, method: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event):
            if SECRET_KEYS.search(key) and event[key]:
                event[key] = REDACTED
            else:
                event[key] = self.scrub(event[key])
        return event

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {k: REDACTED if isinstance(k, str) and SECRET_KEYS.search(k) and v
                    else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        return value

    def scrub_text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in SECRET_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text


class _Handler(logging.StreamHandler):
    """The standard library's handler this module installs (and replaces when called again)."""


def configure_logging(log_format: str = "console", level: str | None = "info",
                      secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Configure structlog and the standard library's logging (rq's and gunicorn's loggers
    included) to render the same way: one JSON object a line under `json`."""
    stream = stream or sys.stderr
    renderer: Any = (structlog.processors.JSONRenderer() if log_format == "json"
                     else structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    numeric = logging.getLevelName((level or "info").upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Redactor(secrets),
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = _Handler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)


def get_logger(**context: Any) -> Any:
    return structlog.get_logger().bind(**context)
