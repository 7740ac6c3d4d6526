"""One module per GitHub event; each registers functions for `event` / `event.action` keys.

A handler receives a verified :class:`Event` and a database session, may record what the event
says (installations, repositories), and returns the jobs to enqueue. It never calls GitHub.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bot.runtime import MINING_QUEUE, ROLLOUT_QUEUE

__all__ = ["MINING_QUEUE", "ROLLOUT_QUEUE", "Event", "JobSpec", "Outcome", "PayloadError",
           "Router", "build_router", "job_id", "require"]


class PayloadError(ValueError):
    """The payload does not have the shape its event needs; the message says what is wrong."""


@dataclass(frozen=True)
class Event:
    name: str
    delivery: str
    payload: dict[str, Any]

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue: an importable function path, its arguments, a deterministic id."""

    queue: str
    func: str
    args: tuple[Any, ...]
    job_id: str
    description: str = ""


@dataclass
class Outcome:
    jobs: list[JobSpec] = field(default_factory=list)
    note: str = ""
    """Why nothing was enqueued, or what was recorded."""


Handler = Callable[[Event, Session], Outcome]


def job_id(kind: str, *parts: object) -> str:
    """A job id rq accepts ([A-Za-z0-9_-]), readable, and unique per distinct input."""
    raw = ":".join(str(p) for p in parts)
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-")[:80]
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    return f"{kind}-{readable}-{digest}"


class Router:
    """Maps `(event, action)` to handlers; `action=None` handles every action of the event."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str | None], list[Handler]] = {}
        self._shapes: dict[str, Callable[[dict[str, Any]], None]] = {}

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self._handlers.setdefault((event, action), []).append(handler)
            return handler
        return decorator

    def shape(self, event: str) -> Callable[[Callable[[dict[str, Any]], None]],
                                            Callable[[dict[str, Any]], None]]:
        """Register the payload check for an event; it raises PayloadError."""
        def decorator(check: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
            self._shapes[event] = check
            return check
        return decorator

    def knows(self, event: str) -> bool:
        return any(key[0] == event for key in self._handlers)

    def validate(self, event: Event) -> None:
        check = self._shapes.get(event.name)
        if check is not None:
            check(event.payload)

    def dispatch(self, event: Event, session: Session) -> Outcome:
        handlers = list(self._handlers.get((event.name, None), []))
        if event.action is not None:
            handlers = self._handlers.get((event.name, event.action), []) + handlers
        if not handlers:
            return Outcome(note=f"no handler for {event.name}.{event.action or '*'}")
        outcome = Outcome()
        for handler in handlers:
            result = handler(event, session)
            outcome.jobs.extend(result.jobs)
            outcome.note = "; ".join(n for n in (outcome.note, result.note) if n)
        return outcome


def require(payload: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    """The value at a dotted path, or PayloadError naming the path and what was expected."""
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise PayloadError(f"`{path}` is missing")
        value = value[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PayloadError(f"`{path}` must be {names}, not {type(value).__name__}")
    return value


def build_router() -> Router:
    """The registry with every event module's handlers."""
    from handlers import installation, issue_comment, ping, pull_request

    router = Router()
    for module in (ping, installation, pull_request, issue_comment):
        module.register(router)
    return router
