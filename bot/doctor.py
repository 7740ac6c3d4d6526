"""`davinci doctor`'s checks: is each thing the configuration names there and usable?

Each check answers with a :class:`Check`: ok, or what is wrong and what to do. A check of
something required that fails makes the doctor (and a worker's start) fail; things that are
not configured are skipped. Nothing here creates a database, a folder or an image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bot.settings import Settings, SettingsError, hide_password

TIMEOUT = 10.0
"""Seconds a check waits for a service."""


@dataclass(frozen=True)
class Check:
    """One thing checked and what came out."""

    name: str
    status: str
    """`ok`, `failed` or `skipped` (not configured, or not needed here)."""
    detail: str
    """What was found."""
    fix: str = ""
    """What to do when it failed."""
    required: bool = True
    """A failure of a required check is an error; of another one a warning."""

    @property
    def broken(self) -> bool:
        return self.status == "failed" and self.required

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ok(name: str, detail: str, required: bool = True) -> Check:
    return Check(name, "ok", detail, required=required)


def failed(name: str, detail: str, fix: str, required: bool = True) -> Check:
    return Check(name, "failed", detail, fix, required)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "skipped", detail, required=False)


def check_database(settings: Settings) -> Check:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db import Database, sqlite_path

    url = settings.effective_database_url
    shown = hide_password(url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return _future_database(path)
    kwargs: dict[str, Any] = {} if path else {"connect_args": {"connect_timeout": 5}}
    database = Database(url, **kwargs)
    try:
        database.ping()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return failed("database", f"{shown} cannot be used: {reason}",
                      "start it, or set DATABASE_URL (or DAVINCI_DATA_DIR) to one that works")
    finally:
        database.dispose()
    return ok("database", f"{shown} answers")


def _future_database(path: Path) -> Check:
    """A SQLite file not made yet: fine when its folder can be made and written."""
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        return failed("database", f"no database yet, and {path} cannot be made: {existing} "
                      "is not a writable folder",
                      "set DAVINCI_DATA_DIR (or DATABASE_URL) to a place you can write")
    return ok("database", f"no database yet; the first command that writes creates {path}")


def check_redis(settings: Settings, required: bool | None = None) -> Check:
    """Required by default when the App is configured (`serve` and `worker` need Redis)."""
    from redis import Redis
    from redis.exceptions import RedisError

    required = settings.github_app_id is not None if required is None else required
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
    except RedisError as exc:
        return failed("redis", f"{hide_password(settings.redis_url)} does not answer ({exc})",
                      "start Redis, or set REDIS_URL to one that runs (`serve`, `worker` and "
                      "`run --via rq` need it)", required)
    finally:
        client.close()
    return ok("redis", f"{hide_password(settings.redis_url)} answers", required)


def check_docker(settings: Settings) -> list[Check]:
    """The engine and the base image (skipped when DAVINCI_SANDBOX=local)."""
    if settings.sandbox == "local":
        return [skipped("docker", "DAVINCI_SANDBOX=local: repository code runs on this "
                                  "machine, without Docker")]
    from sandbox.base import SandboxUnavailable
    from sandbox.docker import client
    from sandbox.factory import engine_address, no_engine

    try:
        engine = client()
    except SandboxUnavailable:
        problem = str(no_engine())
        return [failed("docker", problem.split(": start it")[0],
                       "start the Docker engine (or set DAVINCI_SANDBOX=local to run "
                       "repository code on this machine)"),
                skipped("sandbox image", "needs the Docker engine")]
    try:
        version = engine.version().get("Version", "?")
        image = _image_check(engine, settings.sandbox_image)
    finally:
        engine.close()
    return [ok("docker", f"Docker {version} answers at {engine_address()}"), image]


def _image_check(engine: Any, image: str) -> Check:
    from docker.errors import ImageNotFound

    try:
        engine.images.get(image)
    except ImageNotFound:
        return failed("sandbox image", f"{image} is missing on this engine",
                      "build it with `sudo davinci sandbox build-base` (on every machine "
                      "that runs rollouts)")
    return ok("sandbox image", f"{image} is present")


def check_package_index(settings: Settings) -> Check:
    """The first package index, from this machine, through the configured proxy and CA."""
    if settings.build_network == "none":
        return skipped("package index", "DAVINCI_BUILD_NETWORK=none: builds run offline")
    access = settings.package_access()
    url = access.probe_url
    if url is None:
        return skipped("package index", "only local indexes are configured")
    proxy = next((access.environment[k] for k in ("PIP_PROXY", "HTTPS_PROXY", "https_proxy")
                  if access.environment.get(k)), None)
    bundle = next((host for host, inside in access.mounts.items()
                   if inside.endswith(".crt") or "ca" in inside.lower()), None)
    via = f" via proxy {hide_password(proxy)}" if proxy else ""
    try:
        response = requests.get(url, timeout=TIMEOUT, verify=bundle or True,
                                proxies={"http": proxy, "https": proxy} if proxy else None)
    except requests.RequestException as exc:
        return failed("package index", f"{url} cannot be reached{via} "
                      f"({type(exc).__name__})",
                      "check the network, HTTPS_PROXY / PIP_PROXY, PIP_INDEX_URL and the CA "
                      "bundle (DAVINCI_CA_BUNDLE); environment builds need the index")
    if response.status_code >= 400:
        return failed("package index", f"{url} answered {response.status_code}{via}",
                      "check PIP_INDEX_URL (and its credentials)")
    return ok("package index", f"{url} answers{via}")


def check_llm(settings: Settings) -> list[Check]:
    """Every configured endpoint (the agent's, and the judge's when it has its own)."""
    agent = settings.agent_llm()
    if agent is None:
        return [skipped("llm", "LLM_BASE_URL and LLM_MODEL are unset: the replay policy "
                               "works without a model")]
    endpoints = {(agent.base_url, agent.api_key): "llm"}
    judge = settings.judge_llm()
    if judge is not None and (judge.base_url, judge.api_key) not in endpoints:
        endpoints[(judge.base_url, judge.api_key)] = "llm judge"
    return [_endpoint_check(name, url, key) for (url, key), name in endpoints.items()]


def _endpoint_check(name: str, base_url: str, api_key: str | None) -> Check:
    setting = "LLM_JUDGE_BASE_URL" if name == "llm judge" else "LLM_BASE_URL"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = requests.get(base_url.rstrip("/") + "/models", headers=headers,
                                timeout=TIMEOUT)
    except requests.RequestException as exc:
        return failed(name, f"{base_url} does not answer ({type(exc).__name__})",
                      f"start the model server, or fix {setting}")
    if response.status_code in (401, 403):
        return failed(name, f"{base_url} refused the API key ({response.status_code})",
                      "check LLM_API_KEY" if name == "llm" else "check LLM_JUDGE_API_KEY")
    if response.status_code >= 400:
        return failed(name, f"{base_url}/models answered {response.status_code}",
                      f"check that {setting} is an OpenAI-compatible base URL (often ending "
                      "in /v1)")
    return ok(name, f"{base_url} answers")


def check_github_app(settings: Settings, reach_required: bool = True) -> Check:
    """Credentials that are incomplete or refused always fail; GitHub out of reach fails
    only with ``reach_required`` (a worker starts anyway: its jobs are retried)."""
    if not (settings.github_app_id or settings.github_private_key or settings.webhook_secrets):
        return skipped("github app", "not configured (GITHUB_APP_ID unset): the command line "
                                     "works on local clones without it")
    try:
        settings.require_github_app()
    except SettingsError as exc:
        return failed("github app", str(exc), "set the missing variables (`davinci app "
                      "register` writes them)")
    from bot.github import app_client

    try:
        app = app_client(settings).get_app()
    except requests.RequestException as exc:
        return failed("github app", f"{settings.github_api_url} cannot be reached "
                      f"({type(exc).__name__})", "check the network (HTTPS_PROXY) or "
                      "GITHUB_API_URL", reach_required)
    except Exception as exc:  # noqa: BLE001 - PyGithub's errors: reported as the check
        status = getattr(exc, "status", None) or type(exc).__name__
        return failed("github app", f"GitHub refused the App's credentials ({status})",
                      "check GITHUB_APP_ID and the private key (GITHUB_PRIVATE_KEY_PATH)")
    return ok("github app", f"App {app.slug or settings.github_app_id} authenticates at "
                            f"{settings.github_api_url}")


def data_dir_check(settings: Settings) -> Check:
    """Where data lives; only informative."""
    return Check("data folder", "ok", f"{settings.data_dir.resolve()} (DAVINCI_DATA_DIR)",
                 required=False)


CHECKS: tuple[Callable[[Settings], Check | list[Check]], ...] = (
    data_dir_check, check_database, check_redis, check_docker, check_package_index,
    check_llm, check_github_app,
)


def run_checks(settings: Settings,
               checks: tuple[Callable[[Settings], Check | list[Check]], ...] = CHECKS
               ) -> list[Check]:
    found: list[Check] = []
    for check in checks:
        result = check(settings)
        found.extend(result if isinstance(result, list) else [result])
    return found


class NotReady(RuntimeError):
    """A process cannot start: the message lists each broken prerequisite and its fix."""


def worker_prerequisites(settings: Settings, queues: tuple[str, ...]) -> list[Check]:
    """What a worker needs before it takes a job: Redis and the database always; Docker and
    the base image when it serves rollouts (unless DAVINCI_SANDBOX=local); valid App
    credentials when the App is configured."""
    from bot.runtime import ROLLOUT_QUEUE

    found = [check_redis(settings, required=True), check_database(settings)]
    if ROLLOUT_QUEUE in queues:
        found += check_docker(settings)
    github = check_github_app(settings, reach_required=False)
    if github.status != "skipped":
        found.append(github)
    return found


def require(process: str, checks: list[Check]) -> list[Check]:
    """Raise :class:`NotReady` when a required check failed; the other failures (warnings)
    are returned for the caller to log."""
    broken = [c for c in checks if c.broken]
    if broken:
        raise NotReady(f"the {process} cannot start:\n" + "\n".join(
            f"  {c.name}: {c.detail}; {c.fix}" for c in broken))
    return [c for c in checks if c.status == "failed"]
