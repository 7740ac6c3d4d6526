"""How environment builds reach the package index: the way this machine does.

Company networks put pip behind proxies, private indexes and TLS-intercepting proxies whose CA
only the host trusts. A build container gets the host's package settings (pip's index-url,
extra-index-url, trusted-host, find-links, timeout and proxy; the `PIP_*` and `*_PROXY`
variables), the host's CA bundle mounted read-only, local indexes and wheel folders mounted
read-only at their own paths, and a download cache shared by every build. Which Docker network
it runs on is probed: the first of `bridge` and `host` from which the index answers
(`DAVINCI_BUILD_NETWORK=auto`, the default; the answer serves every process on the machine for
ten minutes), or the network named.

Only builds get this. Sandboxes, where the agent and the repository's tests run, keep no
network.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import docker
from docker.errors import APIError, ContainerError, ImageNotFound
from docker.types import Mount

from sandbox.docker import labels

CA_PATH = "/etc/davinci/ca-bundle.crt"
CACHE_VOLUME = "davinci-pip-cache"
CACHE_PATH = "/var/cache/davinci/pip"
DEFAULT_INDEX = "https://pypi.org/simple"
CANDIDATE_NETWORKS = ("bridge", "host")
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "find-links", "default-timeout",
            "proxy", "cert", "retries")
PASSED_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                    "no_proxy")
DEFAULT_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


@dataclass(frozen=True)
class PackageAccess:
    """What a build container is given to reach packages."""

    environment: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=dict)
    """Host path -> path in the container, read-only."""
    indexes: tuple[str, ...] = ()
    """Every index URL (http, https or file), the first the one probed."""

    def volumes(self) -> list[Mount]:
        """The mounts of a build container. As mounts, not `volumes`: those would also be
        declared in the container's config and so in every image committed from it."""
        found = [Mount(inside, host, type="bind", read_only=True)
                 for host, inside in self.mounts.items()]
        return [*found, Mount(CACHE_PATH, CACHE_VOLUME, type="volume")]

    @property
    def probe_url(self) -> str | None:
        """A page of the first network index that answers only when the index is reachable."""
        remote = [url for url in self.indexes if urlparse(url).scheme in ("http", "https")]
        return remote[0].rstrip("/") + "/pip/" if remote else None


def host_access(variables: Mapping[str, str], ca_bundle: str | None = None) -> PackageAccess:
    """The host's package settings, from pip's configuration and ``variables`` (the
    process's `PIP_*` and proxy variables, as bot.settings read them)."""
    config = {**_pip_config(), **{key.removeprefix("PIP_").lower().replace("_", "-"): value
                                  for key, value in variables.items()
                                  if key.startswith("PIP_")}}
    environment: dict[str, str] = {k: v for k, v in variables.items() if k in PASSED_VARIABLES}
    mounts: dict[str, str] = {}
    for key in PIP_KEYS:
        if key in config and key != "cert":
            environment["PIP_" + key.upper().replace("-", "_")] = config[key]
    bundle = ca_bundle or config.get("cert") or next(
        (path for path in DEFAULT_BUNDLES if os.path.isfile(path)), None)
    if bundle and os.path.isfile(bundle):
        mounts[os.path.realpath(bundle)] = CA_PATH
        environment.update(PIP_CERT=CA_PATH, SSL_CERT_FILE=CA_PATH,
                           REQUESTS_CA_BUNDLE=CA_PATH, CURL_CA_BUNDLE=CA_PATH)
    indexes = [config.get("index-url", DEFAULT_INDEX),
               *config.get("extra-index-url", "").split()]
    for location in [*indexes, *config.get("find-links", "").split()]:
        path = urlparse(location).path if location.startswith("file:") else location
        if path.rstrip("/").endswith("/simple"):  # its pages link to files beside it
            path = os.path.dirname(path.rstrip("/"))
        if path.startswith("/") and os.path.isdir(path):
            mounts[os.path.realpath(path)] = path
    environment["PIP_CACHE_DIR"] = CACHE_PATH
    return PackageAccess(environment, mounts, tuple(i for i in indexes if i))


def dated(command: str, date: str, access: PackageAccess) -> str:
    """``command`` run first with pip taking only files uploaded before ``date`` (ISO 8601),
    so old code gets the packages it was written against; when that fails, run as it is.

    Only indexes that publish upload times can be dated: local indexes and wheel folders
    (`file:` URLs, paths) are left out of the dated attempt, else pip would take their newest
    files whatever the date; the one local folder it sees is BUILD_FLOOR_DIR. With a local
    primary index there is nothing to date.
    """
    env = _dated_env(date, access)
    if env is None:
        return command
    fallback = shlex.quote(f"packages as of {date} did not all install: current releases")
    return f"({env} bash -c {shlex.quote(command)} || (echo {fallback} && {command}))"


BUILD_FLOOR_DIR = "/opt/davinci-build-floor"
BUILD_FLOOR_DATE = "2019-11-01T00:00:00Z"
"""pip builds a source distribution that declares no build system (no `pyproject.toml`: most
before 2019) with `setuptools>=40.8.0`, released in February 2019, and dates that build
requirement like any other: under an earlier date no such sdist builds (coverage 4.4 for a
2017 state), the dated install fails and the state gets today's packages. The setuptools of
this date (41.6, the first of them to run on Python 3.9, and still with the `Feature` old
`setup.py` files import) and the `wheel` it works with (0.33; a 2017 `wheel` breaks its
metadata step) wait in a local folder, which pip does not date, so an older state builds its
sdists with them; a later state's index has newer releases, which pip prefers."""


def build_floor(access: PackageAccess) -> str | None:
    """A build step that puts the oldest build back-end pip accepts for a source
    distribution without a build system (see BUILD_FLOOR_DATE) in BUILD_FLOOR_DIR. None
    when nothing is dated (a local primary index)."""
    env = _dated_env(BUILD_FLOOR_DATE, access)  # no local index or folder of the host's
    if env is None:
        return None
    missed = shlex.quote("no build back-end for old source distributions: those built with "
                         "current ones")
    return (f"({env} python3 -m pip download -q --no-input "
            "--disable-pip-version-check --no-deps --only-binary=:all: "
            f"-d {BUILD_FLOOR_DIR} 'setuptools>=40.8.0' wheel || echo {missed})")


PIP_AS_OF_DIR = "/tmp/davinci-pip-as-of"  # noqa: S108 - inside the build container


def pip_as_of(date: str, access: PackageAccess) -> str | None:
    """A build step that puts pip itself back as it was at ``date``: the newest release
    uploaded before it that runs on the build's Python (pip's own Requires-Python decides),
    tried from its wheel before it replaces the current pip, which stays when it does not
    run. Projects that import pip's internals (pip-tools) break on a newer pip, and every
    build starts by upgrading pip to date the other packages. None when nothing can be dated.
    """
    env = _dated_env(date, access)
    if env is None:
        return None
    kept = shlex.quote(f"pip as of {date} could not be installed or does not run here: "
                       "the current one stays")
    return (f"(rm -rf {PIP_AS_OF_DIR} && {env} python3 -m pip download -q --no-input "
            f"--disable-pip-version-check --no-deps --only-binary=:all: -d {PIP_AS_OF_DIR} pip "
            f'&& wheel=$(echo {PIP_AS_OF_DIR}/pip-*.whl) && python3 "$wheel/pip" --version '
            "&& python3 -m pip install -q --no-input --disable-pip-version-check --no-deps "
            f'--force-reinstall "$wheel" && python3 -m pip --version || echo {kept}; '
            f"rm -rf {PIP_AS_OF_DIR})")


def _dated_env(date: str, access: PackageAccess) -> str | None:
    """`env …` that makes pip take only files uploaded before ``date`` from the network
    indexes, beside BUILD_FLOOR_DIR (undated); None when the primary index is local
    (nothing to date)."""
    primary = access.environment.get("PIP_INDEX_URL", DEFAULT_INDEX)
    if urlparse(primary).scheme not in ("http", "https"):
        return None
    settings, unset = [f"PIP_UPLOADED_PRIOR_TO={date}"], []
    for key in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        kept = [url for url in access.environment.get(key, "").split()
                if urlparse(url).scheme in ("http", "https")]
        if key == "PIP_FIND_LINKS":  # undated, but only old sdists' build back-end is there
            kept.append(BUILD_FLOOR_DIR)
        if kept:
            settings.append(f"{key}={' '.join(kept)}")
        elif key in access.environment:
            unset.append(key)
    return " ".join(["env", *(f"-u {key}" for key in unset), *map(shlex.quote, settings)])


@functools.cache
def _pip_config() -> dict[str, str]:
    """pip's own configuration (`pip config list`), without the environment's part; read
    once per process (a pip process each time would tax every rollout)."""
    try:
        listed = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True,
                                text=True, timeout=60, check=False,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                     "HOME": os.environ.get("HOME", "/root")})
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        name, _, value = line.partition("=")
        section, _, key = name.partition(".")
        if section in ("global", "install") and key in PIP_KEYS:
            with contextlib.suppress(ValueError):
                found[key] = str(json.loads(value.replace("'", '"')))
    return found


@dataclass(frozen=True)
class NetworkChoice:
    network: str
    reachable: bool
    """Whether the index answered from a build container on that network."""
    detail: str


_CHOSEN: dict[tuple[str, str, str], NetworkChoice] = {}
REMEMBER_SECONDS = 600
"""How long a probe's answer serves every process on this machine."""


def build_network(engine: docker.DockerClient, image: str, access: PackageAccess,
                  requested: str = "auto") -> NetworkChoice:
    """The network builds run on: ``requested``, or with `auto` the first candidate from which
    the index answers (probed once per engine, image and settings)."""
    if requested != "auto":
        return NetworkChoice(requested, True, f"{requested} (DAVINCI_BUILD_NETWORK)")
    key = (engine.api.base_url, image, json.dumps(access.environment, sort_keys=True))
    if key not in _CHOSEN:
        _CHOSEN[key] = _remembered(key) or _remember(key, _probe_all(engine, image, access))
    return _CHOSEN[key]


def choice_file(key: tuple[str, str, str]) -> Path:
    """Where other processes on this machine find a recent probe's answer."""
    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"davinci-build-network-{digest}.json"


def _remembered(key: tuple[str, str, str]) -> NetworkChoice | None:
    path = choice_file(key)
    try:
        if time.time() - path.stat().st_mtime > REMEMBER_SECONDS:
            return None
        return NetworkChoice(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _remember(key: tuple[str, str, str], choice: NetworkChoice) -> NetworkChoice:
    """Keep a network that reached the index; a failure is probed again next time."""
    if not choice.reachable:
        return choice
    path = choice_file(key)
    with contextlib.suppress(OSError):
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(asdict(choice)))
        partial.replace(path)
    return choice


def _probe_all(engine: docker.DockerClient, image: str, access: PackageAccess) -> NetworkChoice:
    url = access.probe_url
    if not access.indexes:
        return NetworkChoice(CANDIDATE_NETWORKS[0], True, "no package settings given: "
                                                          f"{CANDIDATE_NETWORKS[0]}")
    if url is None:
        return NetworkChoice("none", True, "only local indexes are configured: builds run "
                                           "offline")
    failures = []
    for network in CANDIDATE_NETWORKS:
        error = probe(engine, image, access, network, url)
        if error is None:
            return NetworkChoice(network, True, f"{network}: {url} answers from a build "
                                                "container")
        failures.append(f"{network}: {error}")
    return NetworkChoice(CANDIDATE_NETWORKS[0], False,
                         f"the index {url} answers from no build network ("
                         + "; ".join(failures) + ")")


PROBE = """import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=10).read(1)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}"[:300], file=sys.stderr); sys.exit(1)
"""


def probe(engine: docker.DockerClient, image: str, access: PackageAccess, network: str,
          url: str) -> str | None:
    """None when ``url`` answers from a container on ``network``; else what went wrong."""
    try:
        engine.containers.run(image, ["python3", "-c", PROBE, url], network_mode=network,
                              environment=access.environment, mounts=access.volumes(),
                              dns_opt=["timeout:2", "attempts:1"],  # a dead resolver: soon
                              user="0:0", remove=True, labels=labels(**{"davinci.probe": "1"}))
    except ContainerError as exc:
        output = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        return (output.strip() or str(exc)).splitlines()[-1][:300]
    except (APIError, ImageNotFound) as exc:
        return str(exc)[:300]
    return None
