"""GitHub App authentication: app-scoped and installation-scoped PyGithub clients.

rq forks a work horse per job, so an in-process token cache would be lost after every job:
installation tokens are cached in Redis until shortly before they expire.
"""

from __future__ import annotations

from datetime import UTC, datetime

from github import Auth, Github, GithubIntegration, GithubRetry
from redis import Redis

from bot.settings import Settings

TOKEN_MARGIN_SECONDS = 300
"""A cached token is not used in its last five minutes."""
MAX_RATE_LIMIT_WAIT = 600
"""Longer waits raise instead of holding a worker (the job is retried later)."""


class GitHubAppNotConfigured(RuntimeError):
    pass


def _retry() -> GithubRetry:
    return GithubRetry(total=8, max_rate_limit_wait=MAX_RATE_LIMIT_WAIT)


# GitHub asks for serial requests and a pause of a second between writes (the settings'
# `github_write_pause`); reads need no pause (PyGithub waits 0.25 s before every request by
# default, which made each mining job wait seconds for nothing). Comment creation is paced per
# installation by bot.status too.


def app_client(settings: Settings) -> GithubIntegration:
    """The App itself (JWT): installations, tokens. Retries passed explicitly."""
    if not settings.github_app_id or not settings.github_private_key:
        raise GitHubAppNotConfigured("GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or "
                                     "GITHUB_PRIVATE_KEY_PATH) are needed to reach GitHub")
    auth = Auth.AppAuth(settings.github_app_id, settings.github_private_key)
    return GithubIntegration(auth=auth, base_url=settings.github_api_url, retry=_retry(),
                             seconds_between_requests=None,
                             seconds_between_writes=settings.github_write_pause)


def installation_token(settings: Settings, redis: Redis, installation_id: int) -> str:
    """A valid installation token, from the Redis cache or freshly minted."""
    key = f"davinci:installation-token:{installation_id}"
    cached = redis.get(key)
    if cached:
        return cached.decode() if isinstance(cached, bytes) else str(cached)
    access = app_client(settings).get_access_token(installation_id)
    expires = access.expires_at or datetime.now(UTC)
    ttl = int((expires - datetime.now(UTC)).total_seconds()) - TOKEN_MARGIN_SECONDS
    if ttl > 0:
        redis.set(key, access.token, ex=ttl)
    return access.token


def installation_client(settings: Settings, redis: Redis, installation_id: int) -> Github:
    """PyGithub scoped to one installation, honouring rate limits and retrying 5xx."""
    token = installation_token(settings, redis, installation_id)
    return Github(auth=Auth.Token(token), base_url=settings.github_api_url, retry=_retry(),
                  seconds_between_requests=None,
                  seconds_between_writes=settings.github_write_pause)
