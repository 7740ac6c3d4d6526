"""Process resources opened lazily from settings: the database, Redis, rq queues."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Queue

from bot.db import Database, require_existing
from bot.settings import Settings

MINING_QUEUE = "davinci-mining"
ROLLOUT_QUEUE = "davinci-rollouts"
QUEUES = (MINING_QUEUE, ROLLOUT_QUEUE)


@dataclass
class Runtime:
    """What a process opens from its settings, each thing once and only when first used."""

    settings: Settings
    read_only: bool = False
    """A command that only reads: a database that does not exist yet is not created."""
    _db: Database | None = field(default=None, repr=False)
    _redis: Redis | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        if self._db is None:
            url = self.settings.effective_database_url
            if self.read_only:
                require_existing(url)
            database = Database(url)
            try:
                database.create_schema()
            except Exception:
                database.dispose()
                raise
            self._db = database
        return self._db

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self.settings.redis_url, socket_connect_timeout=2,
                                         socket_timeout=5)
        return self._redis

    def queue(self, name: str, **kwargs: Any) -> Queue:
        return Queue(name, connection=self.redis, **kwargs)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
        if self._redis is not None:
            self._redis.close()
