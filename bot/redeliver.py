"""Self-healing: ask GitHub to redeliver the webhook deliveries that never reached us intact.

GitHub does not redeliver a failed delivery by itself. Periodically (the worker's sweeper, or
`davinci redeliver`), the App's recent deliveries are listed with the App's JWT and grouped by
GUID. A GUID with no successful attempt, which the inbox does not hold as handled, is
redelivered through `POST /app/hook/deliveries/{id}/attempts`, at most `MAX_TRIES` times. A
redelivery carries the original GUID, so the inbox's deduplication still holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from github import GithubException, GithubIntegration
from sqlalchemy import select

from bot.github import app_client
from bot.models import Delivery
from bot.runtime import Runtime

WINDOW = timedelta(days=3)
"""GitHub keeps deliveries redeliverable for three days."""
MAX_TRIES = 3
MAX_PAGES = 20
HANDLED = ("enqueued", "ignored")
log = structlog.get_logger()
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass
class Redelivery:
    examined: int = 0
    """Delivery attempts listed within the window."""
    failed: list[str] = field(default_factory=list)
    """GUIDs with no successful attempt that the inbox does not hold as handled."""
    redelivered: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    """Failed GUIDs already redelivered MAX_TRIES times."""

    def as_json(self) -> dict[str, Any]:
        return {"examined": self.examined, "failed": self.failed,
                "redelivered": self.redelivered, "given_up": self.given_up}


def recent_deliveries(app: GithubIntegration, since: datetime) -> list[dict[str, Any]]:
    """The App's delivery attempts since ``since``, newest first (cursor pagination)."""
    found: list[dict[str, Any]] = []
    url: str | None = "/app/hook/deliveries"
    parameters: dict[str, Any] | None = {"per_page": 100}
    for _ in range(MAX_PAGES):
        if url is None:
            break
        headers, page = app.requester.requestJsonAndCheck("GET", url, parameters=parameters)
        for item in page or []:
            if _when(item) < since:
                return found
            found.append(item)
        link = {k.lower(): v for k, v in (headers or {}).items()}.get("link", "")
        match = _NEXT.search(link)
        url, parameters = (match.group(1), None) if match else (None, None)
    return found


def redeliver_failed(runtime: Runtime, window: timedelta = WINDOW) -> Redelivery:
    """Redeliver what failed within ``window``; see the module's docstring."""
    report = Redelivery()
    app = app_client(runtime.settings)
    attempts = recent_deliveries(app, datetime.now(UTC) - window)
    report.examined = len(attempts)
    by_guid: dict[str, list[dict[str, Any]]] = {}
    for item in attempts:
        by_guid.setdefault(str(item.get("guid")), []).append(item)
    unhealed = {guid: items for guid, items in by_guid.items()
                if not any(200 <= int(i.get("status_code") or 0) < 300 for i in items)}
    if not unhealed:
        return report
    with runtime.db.session() as session:
        handled = set(session.scalars(select(Delivery.id).where(
            Delivery.id.in_(list(unhealed)), Delivery.status.in_(HANDLED))))
    for guid, items in unhealed.items():
        if guid in handled:  # it reached us; only GitHub's record says otherwise
            continue
        report.failed.append(guid)
        key = f"davinci:redelivered:{guid}"
        tries = int(runtime.redis.incr(key))
        runtime.redis.expire(key, int(window.total_seconds()))
        if tries > MAX_TRIES:
            report.given_up.append(guid)
            continue
        newest = max(items, key=_when)
        try:
            app.requester.requestJsonAndCheck(
                "POST", f"/app/hook/deliveries/{int(newest['id'])}/attempts")
        except GithubException as exc:
            log.warning("redeliver.refused", guid=guid, status=exc.status)
            continue
        report.redelivered.append(guid)
    log.info("redeliver.done", **{k: len(v) if isinstance(v, list) else v
                                  for k, v in report.as_json().items()})
    return report


def _when(item: dict[str, Any]) -> datetime:
    raw = str(item.get("delivered_at") or "1970-01-01T00:00:00Z")
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))
