"""A local bare mirror of a repository, fetched incrementally, for `git blame`.

Mirrors live under ``<data dir>/mirrors/<owner>/<name>.git``. A fetch asks only for the commits
a pull request needs; commits already present are not fetched again. Credentials never reach
the mirror's configuration or the logs: an installation token is passed for one command as an
`http.extraheader` on the command line.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from chains.submodules import resolved_url, submodules

log = structlog.get_logger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


class MirrorError(RuntimeError):
    """A git operation on the mirror failed; the message says which and why."""


@dataclass(frozen=True)
class Mirror:
    path: Path
    clone_url: str

    @classmethod
    def at(cls, data_dir: Path, repository: str, clone_url: str) -> Mirror:
        owner, _, name = repository.partition("/")
        if not (_SAFE_PART.match(owner) and _SAFE_PART.match(name)) or {owner, name} & {".", ".."}:
            raise MirrorError(f"not a repository name: {repository!r}")
        return cls(data_dir / "mirrors" / owner / f"{name}.git", clone_url)

    def ensure(self) -> Mirror:
        """Create the bare repository if it does not exist yet (no network)."""
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self._git("init", "-q", "--bare")
            self._git("config", "remote.origin.url", _without_credentials(self.clone_url))
            log.info("mirror.created", mirror=str(self.path))
        return self

    def has(self, sha: str) -> bool:
        result = subprocess.run(["git", "--git-dir", str(self.path), "cat-file", "-e",
                                 f"{sha}^{{commit}}"], capture_output=True)
        return result.returncode == 0

    def first_parent(self, sha: str) -> str:
        """The first parent of `sha`, or "" for a root commit."""
        parents = self._git("rev-list", "--parents", "-n", "1", sha).split()
        return parents[1] if len(parents) > 1 else ""

    def fetch(self, shas: list[str] | tuple[str, ...], token: str | None = None) -> int:
        """Fetch the commits in `shas` that are missing; returns how many were asked for."""
        self.ensure()
        wanted = [sha for sha in dict.fromkeys(shas) if sha and not self.has(sha)]
        for sha in wanted:
            if not _SHA.match(sha):
                raise MirrorError(f"not a commit id: {sha!r}")
        if not wanted:
            return 0
        # Each fetched commit gets a branch, so clones of the mirror (the sandboxes) carry it.
        self._git(*self._auth(token), "fetch", "-q", "--no-tags", "origin",
                  *(f"{sha}:refs/heads/davinci/{sha}" for sha in wanted), network=True)
        log.info("mirror.fetched", mirror=str(self.path), commits=len(wanted))
        return len(wanted)

    def fetch_submodules(self, commits: list[str] | tuple[str, ...]) -> int:
        """Fetch the submodule commits that ``commits`` record into the module stores
        (`modules/<name>`), where sandboxes find them (sandbox.tree); returns how many were
        fetched. Only from the host the mirror is fetched from (`chains.submodules.
        resolved_url`), and never with the installation's token, which is for this
        repository: a private or unreachable submodule stays missing, and its folder empty
        in the sandbox."""
        superproject = self.clone_url
        if not superproject:
            try:
                superproject = self._git("config", "remote.origin.url").strip()
            except MirrorError:  # no origin: every submodule URL is refused below
                superproject = ""
        fetched = 0
        for commit in dict.fromkeys(commits):
            for module in submodules(self.path, commit):
                url = resolved_url(module.url, superproject) if module.url else None
                store = Mirror(self.path / "modules" / module.name, url or "")
                if url is None or ((store.path / "HEAD").exists() and store.has(module.commit)):
                    continue
                try:
                    store.ensure()._git("fetch", "-q", "--no-tags", url,
                                        f"{module.commit}:refs/heads/davinci/{module.commit}",
                                        network=True)
                except MirrorError as exc:
                    log.warning("mirror.submodule_missing", mirror=str(self.path),
                                submodule=module.path, error=str(exc))
                    continue
                fetched += 1
        return fetched

    def _auth(self, token: str | None) -> list[str]:
        if not token or not self.clone_url.startswith("https://"):
            return []
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        return ["-c", f"http.extraheader=AUTHORIZATION: basic {basic}"]

    def _git(self, *args: str, network: bool = False) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
        command = ["git", "--git-dir", str(self.path), *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, env=env,
                                    timeout=600 if network else 60)
        except subprocess.TimeoutExpired as exc:
            raise MirrorError(f"git {_public(args)} timed out in {self.path}") from exc
        if result.returncode != 0:
            raise MirrorError(f"git {_public(args)} failed in {self.path}: "
                              f"{result.stderr.strip()[-500:]}")
        return result.stdout


def _public(args: tuple[str, ...]) -> str:
    """The command's arguments with any credential header left out, for messages."""
    shown: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "-c":
            skip = True
            continue
        shown.append(arg)
    return " ".join(shown)


def _without_credentials(url: str) -> str:
    return re.sub(r"^(https?://)[^@/]+@", r"\1", url)
