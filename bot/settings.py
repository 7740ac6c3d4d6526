"""Typed settings, read once from the environment.

Nothing else in the project reads ``os.environ``: the process entry points call
:func:`Settings.from_env` and pass the result down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from chains.config import ROLLOUT_LIMITS, rollout_limit

if TYPE_CHECKING:
    from sandbox.packages import PackageAccess

DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_GITHUB_WRITE_PAUSE = 1.0
DEFAULT_GITHUB_WRITES_PER_MINUTE = 20
APP_DIR_NAME = "davinci-agency"
DEFAULT_SANDBOX_IMAGE = "davinci-sandbox-base:latest"
SANDBOX_BACKENDS = ("docker", "local")
LOG_FORMATS = ("json", "console")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class LLMEndpoint:
    """Where one role (agent, instruction writer, judge) sends its chat completions."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything the process needs to know about its environment."""

    github_app_id: str | None = None
    """The App's id or client id, used as the JWT issuer (`GITHUB_APP_ID`)."""
    github_private_key: str | None = field(default=None, repr=False)
    """The App's private key in PEM (`GITHUB_PRIVATE_KEY` or `GITHUB_PRIVATE_KEY_PATH`)."""
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    """Accepted webhook secrets; several during rotation (`GITHUB_WEBHOOK_SECRET`)."""
    github_api_url: str = DEFAULT_GITHUB_API_URL
    """REST base URL (`GITHUB_API_URL`)."""
    github_write_pause: float = DEFAULT_GITHUB_WRITE_PAUSE
    """Seconds between two writes to GitHub (`DAVINCI_GITHUB_WRITE_PAUSE`): GitHub asks for a
    second; a GitHub of your own (a simulator, an Enterprise server) may need none."""
    github_writes_per_minute: int = DEFAULT_GITHUB_WRITES_PER_MINUTE
    """Comments and check runs created or edited per installation and minute
    (`DAVINCI_GITHUB_WRITES_PER_MINUTE`), well under GitHub's secondary limit; more wait for
    the next minute."""
    redis_url: str = DEFAULT_REDIS_URL
    """Redis for rq, locks and the token cache (`REDIS_URL`)."""
    data_dir: Path = field(default_factory=lambda: user_data_dir(os.environ))
    """Database, mirrors, corpus exports and work trees (`DAVINCI_DATA_DIR`); unset: the
    user's data directory (`$XDG_DATA_HOME/davinci-agency`, else
    `~/.local/share/davinci-agency`), the same wherever a command is started."""
    database_url: str = ""
    """SQLAlchemy URL (`DATABASE_URL`); empty means a SQLite file under `data_dir`. Heroku's
    `postgres://` is read as `postgresql://` (psycopg 3)."""
    mirror_url: str | None = None
    """Where a worker fetches a repository it has no mirror of when GitHub cannot be asked
    (`DAVINCI_MIRROR_URL`): a git base URL or folder; `<owner>/<name>.git` is appended."""
    sandbox: str | None = None
    """`docker` or `local` (`DAVINCI_SANDBOX`); None means docker. Repository code runs on
    this machine (`local`) only when asked for by name."""
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    """Base image for sandboxes (`DAVINCI_SANDBOX_IMAGE`)."""
    build_network: str = "auto"
    """Docker network environment-image builds run on (`DAVINCI_BUILD_NETWORK`): `auto` (the
    first of `bridge` and `host` from which the package index answers), `bridge`, `host`, a
    network of your own that reaches only package indexes, or `none` for offline builds."""
    python: str = "auto"
    """The sandboxes' Python (`DAVINCI_PYTHON`): `auto` chooses, per repository state, among
    the built base images by what the state declares; `X.Y` always uses that version's."""
    packages_as_of: str = "commit"
    """`commit` (`DAVINCI_PACKAGES_AS_OF`, the default): environments first try the packages
    as they were when the state was committed, then current ones; `latest`: current only."""
    ca_bundle: str | None = None
    """CA bundle mounted into environment builds (`DAVINCI_CA_BUNDLE`); unset: pip's `cert`
    setting, else the system bundle."""
    package_variables: dict[str, str] = field(default_factory=dict, repr=False)
    """The `PIP_*` and `*_PROXY` variables builds inherit, so they reach packages as this
    machine does."""
    llm_base_url: str | None = None
    """OpenAI-compatible endpoint (`LLM_BASE_URL`); unset means the replay policy."""
    llm_api_key: str | None = field(default=None, repr=False)
    """API key for the endpoint (`LLM_API_KEY`)."""
    llm_model: str | None = None
    """Model name at the endpoint (`LLM_MODEL`)."""
    llm_judge_model: str | None = None
    """Model that judges the agent's patches (`LLM_JUDGE_MODEL`); unset means `llm_model`.
    A different model avoids a model grading its own work."""
    llm_judge_base_url: str | None = None
    """Endpoint of the judge (`LLM_JUDGE_BASE_URL`); unset means `llm_base_url`."""
    llm_judge_api_key: str | None = field(default=None, repr=False)
    """API key for the judge's endpoint (`LLM_JUDGE_API_KEY`); unset means `llm_api_key`, but
    only when the judge uses the agent's endpoint, so no key is sent to a host it is not for."""
    llm_temperature: float = 0.0
    """Sampling temperature of the agent's requests (`LLM_TEMPERATURE`)."""
    llm_max_tokens: int = 8192
    """Completion tokens one agent turn may take (`LLM_MAX_TOKENS`)."""
    llm_context_window: int | None = None
    """The agent model's window in tokens (`LLM_CONTEXT_WINDOW`); unset: ask the server."""
    rollout_limits: tuple[tuple[str, int | float], ...] = ()
    """Rollout limits for every repository (`DAVINCI_MAX_STEPS`, `DAVINCI_MAX_ATTEMPTS`,
    `DAVINCI_MAX_TOKENS`, `DAVINCI_THRESHOLD`); over `.github/davinci.yml`'s."""
    llm_writer_model: str | None = None
    """Model that writes the instructions, at `llm_base_url` (`LLM_WRITER_MODEL`); unset means
    `llm_model`."""
    dashboard_token: str | None = field(default=None, repr=False)
    """Bearer token for the dashboard (`DAVINCI_DASHBOARD_TOKEN`); unset turns it off."""
    corpus_exclude: tuple[str, ...] = ()
    """Repositories (owner/name or glob) whose trajectories never enter the corpus
    (`DAVINCI_CORPUS_EXCLUDE`, comma-separated)."""
    abandoned_after: int = 90
    """Seconds without a heartbeat after which a started job counts as abandoned (its worker
    died) and is retried by another worker (`DAVINCI_ABANDONED_AFTER`)."""
    log_format: str = "console"
    """`json` (production) or `console` (development) (`DAVINCI_LOG_FORMAT`)."""
    log_level: str | None = None
    """Lowest level logged (`DAVINCI_LOG_LEVEL`); unset: `warning` for commands (`-v`: info),
    `info` for the long-running `serve` and `worker`."""

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'davinci.db').resolve()}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value the log redactor must never print."""
        values = [*self.webhook_secrets, self.github_private_key, self.llm_api_key,
                  self.llm_judge_api_key, self.dashboard_token]
        return tuple(v for v in values if v)

    def package_access(self) -> PackageAccess:
        """How environment builds reach the package index (sandbox.packages)."""
        from sandbox.packages import host_access

        return host_access(self.package_variables, self.ca_bundle)

    def agent_llm(self) -> LLMEndpoint | None:
        """The agent's endpoint; None when `LLM_BASE_URL` or `LLM_MODEL` is unset."""
        return _endpoint(self.llm_base_url, self.llm_model, self.llm_api_key)

    def writer_llm(self) -> LLMEndpoint | None:
        """The instruction writer's endpoint: the agent's, with `LLM_WRITER_MODEL` if set."""
        return _endpoint(self.llm_base_url, self.llm_writer_model or self.llm_model,
                         self.llm_api_key)

    def judge_llm(self) -> LLMEndpoint | None:
        """The judge's endpoint: each `LLM_JUDGE_*` falls back to the agent's setting; None
        when neither names an endpoint and a model."""
        agent_url = (self.llm_base_url or "").rstrip("/")
        own_endpoint = self.llm_judge_base_url not in (None, agent_url)
        api_key = self.llm_judge_api_key or (None if own_endpoint else self.llm_api_key)
        return _endpoint(self.llm_judge_base_url or self.llm_base_url,
                         self.llm_judge_model or self.llm_model, api_key)

    def require_github_app(self) -> Settings:
        """Fail with a clear message unless the App's credentials are all present."""
        missing = [name for name, value in (
            ("GITHUB_APP_ID", self.github_app_id),
            ("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH", self.github_private_key),
            ("GITHUB_WEBHOOK_SECRET", self.webhook_secrets),
        ) if not value]
        if missing:
            raise SettingsError(
                "server mode needs " + ", ".join(missing)
                + " (see the configuration table in README.md)"
            )
        return self

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return _llm_roles_complete(cls(
            github_app_id=_optional(env, "GITHUB_APP_ID"),
            github_private_key=_private_key(env),
            webhook_secrets=_secrets(env),
            github_api_url=_url(env, "GITHUB_API_URL", DEFAULT_GITHUB_API_URL, ("http", "https")),
            github_write_pause=_number(env, "DAVINCI_GITHUB_WRITE_PAUSE",
                                       DEFAULT_GITHUB_WRITE_PAUSE, 0.0, 60.0),
            github_writes_per_minute=int(_number(env, "DAVINCI_GITHUB_WRITES_PER_MINUTE",
                                                 DEFAULT_GITHUB_WRITES_PER_MINUTE, 1, 100_000,
                                                 whole=True)),
            redis_url=_url(env, "REDIS_URL", DEFAULT_REDIS_URL, ("redis", "rediss", "unix")),
            data_dir=Path(_optional(env, "DAVINCI_DATA_DIR") or user_data_dir(env)),
            database_url=_database_url(env),
            mirror_url=_optional(env, "DAVINCI_MIRROR_URL"),
            sandbox=_choice(env, "DAVINCI_SANDBOX", SANDBOX_BACKENDS, None),
            sandbox_image=_optional(env, "DAVINCI_SANDBOX_IMAGE") or DEFAULT_SANDBOX_IMAGE,
            build_network=_optional(env, "DAVINCI_BUILD_NETWORK") or "auto",
            python=_python(env),
            packages_as_of=_choice(env, "DAVINCI_PACKAGES_AS_OF", ("commit", "latest"),
                                   "commit") or "commit",
            ca_bundle=_optional(env, "DAVINCI_CA_BUNDLE"),
            package_variables={k: v for k, v in env.items()
                               if k.startswith("PIP_") or k.lower().endswith("_proxy")},
            llm_base_url=_optional(env, "LLM_BASE_URL"),
            llm_api_key=_optional(env, "LLM_API_KEY"),
            llm_model=_optional(env, "LLM_MODEL"),
            llm_judge_model=_optional(env, "LLM_JUDGE_MODEL"),
            llm_judge_base_url=_optional_url(env, "LLM_JUDGE_BASE_URL", ("http", "https")),
            llm_judge_api_key=_optional(env, "LLM_JUDGE_API_KEY"),
            llm_writer_model=_optional(env, "LLM_WRITER_MODEL"),
            llm_temperature=_number(env, "LLM_TEMPERATURE", 0.0, 0.0, 2.0),
            llm_max_tokens=int(_number(env, "LLM_MAX_TOKENS", 8192, 16, 1_000_000, whole=True)),
            llm_context_window=_window(env),
            rollout_limits=_limits(env),
            dashboard_token=_optional(env, "DAVINCI_DASHBOARD_TOKEN"),
            corpus_exclude=tuple(p.strip() for p in env.get("DAVINCI_CORPUS_EXCLUDE", "")
                                 .split(",") if p.strip()),
            abandoned_after=_seconds(env, "DAVINCI_ABANDONED_AFTER", 90, minimum=3),
            log_format=_choice(env, "DAVINCI_LOG_FORMAT", LOG_FORMATS, "console") or "console",
            log_level=_choice(env, "DAVINCI_LOG_LEVEL",
                              ("debug", "info", "warning", "error"), None),
        ))


def user_data_dir(env: Mapping[str, str]) -> Path:
    """Where data lives when `DAVINCI_DATA_DIR` is unset (the XDG base directory rule)."""
    base = _optional(env, "XDG_DATA_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / APP_DIR_NAME


DATABASE_URL_FORMS = ("postgresql://USER:PASSWORD@HOST:5432/NAME or "
                      "sqlite:////absolute/path/davinci.db")


def _database_url(env: Mapping[str, str]) -> str:
    """`DATABASE_URL`, checked now so a typo is one line here, not a traceback later."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    value = _optional(env, "DATABASE_URL")
    if value is None:
        return ""
    if value.startswith("postgres://"):  # Heroku and many hosts hand out this spelling
        value = "postgresql://" + value.removeprefix("postgres://")
    try:
        url = make_url(value)
    except ArgumentError:
        raise SettingsError(f"DATABASE_URL={hide_password(value)!r} is not a database URL: "
                            f"use {DATABASE_URL_FORMS}") from None
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise SettingsError(f"DATABASE_URL names the database kind {url.drivername!r}, which "
                            f"this installation cannot use: use {DATABASE_URL_FORMS}") from None
    return value


def hide_password(url: str) -> str:
    """``url`` without the password between `user:` and `@`, for messages and reports."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _llm_roles_complete(settings: Settings) -> Settings:
    """A judge or writer setting that would silently switch nothing on is a mistake."""
    if settings.judge_llm() is None and (settings.llm_judge_model
                                         or settings.llm_judge_base_url):
        raise SettingsError("LLM_JUDGE_* is set, but the judge needs an endpoint and a model: "
                            "set LLM_JUDGE_BASE_URL or LLM_BASE_URL, and LLM_JUDGE_MODEL or "
                            "LLM_MODEL")
    if settings.llm_writer_model and settings.writer_llm() is None:
        raise SettingsError("LLM_WRITER_MODEL is set, but the instruction writer uses "
                            "LLM_BASE_URL, which is not")
    return settings


def _endpoint(base_url: str | None, model: str | None,
              api_key: str | None) -> LLMEndpoint | None:
    return LLMEndpoint(base_url, model, api_key) if base_url and model else None


def _seconds(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    value = _optional(env, name)
    if value is None:
        return default
    try:
        seconds = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of seconds, not {value!r}") from None
    if seconds < minimum:
        raise SettingsError(f"{name} must be at least {minimum} seconds, not {seconds}")
    return seconds


def _number(env: Mapping[str, str], name: str, default: float, low: float,
            high: float, whole: bool = False) -> float:
    value = _optional(env, name)
    if value is None:
        return default
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{name} must be {kind}, not {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{name} must be from {low:g} to {high:g}, not {value}")
    return number


def _window(env: Mapping[str, str]) -> int | None:
    if _optional(env, "LLM_CONTEXT_WINDOW") is None:
        return None
    return int(_number(env, "LLM_CONTEXT_WINDOW", 0, 2_048, 100_000_000, whole=True))


def _limits(env: Mapping[str, str]) -> tuple[tuple[str, int | float], ...]:
    found = []
    for name in ROLLOUT_LIMITS:
        variable = f"DAVINCI_{name.upper()}"
        value = _optional(env, variable)
        if value is not None:
            try:
                found.append((name, rollout_limit(name, value)))
            except ValueError as exc:
                raise SettingsError(f"{variable}: {exc}") from None
    return tuple(found)


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...],
            default: str | None) -> str | None:
    value = _optional(env, name)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
    return value.lower()


def _python(env: Mapping[str, str]) -> str:
    value = _optional(env, "DAVINCI_PYTHON") or "auto"
    if value != "auto" and not re.fullmatch(r"3\.\d{1,2}", value):
        raise SettingsError(f"DAVINCI_PYTHON={value!r} is neither `auto` nor a version like 3.11")
    return value


def _optional_url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    if _optional(env, name) is None:
        return None
    return _url(env, name, "", schemes)


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = _optional(env, name) or default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise SettingsError(f"{name}={value!r} must be a URL starting with "
                            + " or ".join(f"{s}://" for s in schemes))
    return value.rstrip("/")


def _secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("GITHUB_WEBHOOK_SECRET", "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _private_key(env: Mapping[str, str]) -> str | None:
    text = _optional(env, "GITHUB_PRIVATE_KEY")
    path = _optional(env, "GITHUB_PRIVATE_KEY_PATH")
    name = "GITHUB_PRIVATE_KEY"
    if text is None and path is not None:
        name = "GITHUB_PRIVATE_KEY_PATH"
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SettingsError(f"GITHUB_PRIVATE_KEY_PATH: cannot read {path!r}: "
                                f"{exc.strerror}") from exc
    if text is None:
        return None
    # Environments often flatten newlines to a literal "\n".
    text = text.replace("\\n", "\n").strip() + "\n"
    try:
        load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{name} does not hold a PEM private key that parses "
                            f"(expected '-----BEGIN RSA PRIVATE KEY-----' ...): {exc}") from exc
    return text
