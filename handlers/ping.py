"""`ping`: GitHub's hello when a webhook is created."""

from __future__ import annotations

from sqlalchemy.orm import Session

from handlers import Event, Outcome, Router, require


def register(router: Router) -> None:
    @router.shape("ping")
    def shape(payload: dict[str, object]) -> None:
        require(payload, "zen", str)

    @router.register("ping")
    def ping(event: Event, session: Session) -> Outcome:
        return Outcome(note="pong")
