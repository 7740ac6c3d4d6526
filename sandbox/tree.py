"""The one way a repository state enters a sandbox: the files of one commit, and no history.

A sandbox never receives a clone. It receives a tar of the tree at one commit (read on the
host as data with `git ls-tree` and `git cat-file`, so `.gitattributes` filters and
export rules play no part) and makes a fresh git repository whose one commit is that tree
(:data:`SEED`). Later commits, tags, reflogs and packed objects of the source repository are
never in it, so `git log --all` or `git cat-file --batch-all-objects` show nothing past the
state the task starts from.

Submodules are filled at the commit the tree records when the clone holds that commit (its
module store, `.git/modules/<name>`, as `git submodule update --init` leaves it, or a
checked-out submodule's own repository), read the same way; otherwise their folders are
empty (:func:`state_files`).

The tree is the commit's, plus the version module a build would generate into it
(:func:`generated_version_files`: setuptools_scm's `write_to`/`version_file`, hatch-vcs's
`version-file`), which git does not hold: without it a package that imports its
`_version.py` cannot be imported from the work tree. It is part of the starting commit, so
it is never in the agent's diff.
"""

from __future__ import annotations

import io
import posixpath
import re
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from chains.submodules import Submodule, submodules
from sandbox.base import SandboxError

_GIT_ENV = ("GIT_AUTHOR_NAME=davinci GIT_AUTHOR_EMAIL=davinci@sandbox "
            "GIT_COMMITTER_NAME=davinci GIT_COMMITTER_EMAIL=davinci@sandbox "
            "GIT_AUTHOR_DATE='2000-01-01T00:00:00Z' GIT_COMMITTER_DATE='2000-01-01T00:00:00Z'")
SEED = (f"git init -q -b main && git add -A -f && {_GIT_ENV} git commit -q --no-verify "
        "--allow-empty -m 'The starting state of the task' && git rev-parse HEAD")
"""Run in the work tree once the files are there: a repository with one commit, the tree."""


VERSION_MODULE = (b"# The version module a build of this project writes; a stand-in.\n"
                  b"__version__ = version = '0.0.0'\n"
                  b"__version_tuple__ = version_tuple = (0, 0, 0)\n")
_WRITE_TO = re.compile(r"""\b(?:write_to|version_file)["']?\s*[=:]\s*["']([^"']+)["']""")


def generated_version_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """Path -> content of the Python version modules the project's build generates (named by
    ``files``: `pyproject.toml`, `setup.py`) that the tree does not hold."""
    named: list[str] = []
    try:
        project = tomllib.loads(files.get("pyproject.toml", b"").decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError:
        project = {}
    tool = project.get("tool", {}) if isinstance(project.get("tool"), dict) else {}
    scm = tool.get("setuptools_scm", {})
    vcs = tool.get("hatch", {}).get("build", {}).get("hooks", {}).get("vcs", {}) \
        if isinstance(tool.get("hatch"), dict) else {}
    for table, key in ((scm, "write_to"), (scm, "version_file"), (vcs, "version-file")):
        if isinstance(table, dict) and isinstance(table.get(key), str):
            named.append(table[key])
    named += _WRITE_TO.findall(files.get("setup.py", b"").decode("utf-8", "replace"))
    found = {}
    for path in named:
        clean = posixpath.normpath(path)
        if clean.endswith(".py") and not clean.startswith(("/", "..")) and clean not in files:
            found[clean] = VERSION_MODULE
    return found


SUBMODULE_DEPTH = 3
"""Submodules of submodules are filled this deep."""


@dataclass(frozen=True)
class StateFile:
    """One entry of a repository state: ``store`` is the git repository its object is read
    from (the clone's, or a submodule's)."""

    mode: str
    kind: str
    """`blob`, or `commit` for a submodule whose commit no store holds (an empty folder)."""
    sha: str
    path: str
    store: Path


def state_files(repo: Path, commit: str, depth: int = SUBMODULE_DEPTH) -> list[StateFile]:
    """Every entry of ``commit``, each submodule's files in its folder when a store of the
    clone holds the commit the tree records. Raises SandboxError when the commit is not in
    ``repo``."""
    try:
        entries = tree_entries(repo, f"{commit}^{{commit}}")
    except SandboxError as exc:
        raise SandboxError(f"commit {commit} is not in {repo.name}: {exc}") from exc
    links = {path: sha for _, kind, sha, path in entries if kind == "commit"}
    stores = {}
    if depth > 0 and links:
        stores = {s.path: (store, s.commit) for s in submodules(repo, commit, links)
                  if (store := _submodule_store(repo, s)) is not None}
    found: list[StateFile] = []
    for mode, kind, sha, path in entries:
        if kind == "commit" and path in stores:
            store, recorded = stores[path]
            found += [StateFile(f.mode, f.kind, f.sha, f"{path}/{f.path}", f.store)
                      for f in state_files(store, recorded, depth - 1)]
        else:
            found.append(StateFile(mode, kind, sha, path, repo))
    return found


def _submodule_store(repo: Path, submodule: Submodule) -> Path | None:
    """The git repository of the clone that holds the submodule's commit, if any: its module
    store (where `git submodule update` and the mirror keep it), or a checked-out
    submodule's own repository (a folder without its own `.git` would be read as the
    clone)."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--absolute-git-dir"],
                          capture_output=True, text=True, check=False)
    candidates = [Path(proc.stdout.strip()) / "modules" / submodule.name] \
        if proc.returncode == 0 else []
    if (repo / submodule.path / ".git").exists():
        candidates.append(repo / submodule.path)
    for store in candidates:
        if store.is_dir() and subprocess.run(
                ["git", "-C", str(store), "cat-file", "-e", f"{submodule.commit}^{{commit}}"],
                capture_output=True, check=False).returncode == 0:
            return store
    return None


def state_blobs(files: list[StateFile]) -> dict[tuple[Path, str], bytes]:
    """(store, sha) -> content of every blob of ``files``, one `git cat-file` per store."""
    by_store: dict[Path, list[str]] = {}
    for f in files:
        if f.kind == "blob":
            by_store.setdefault(f.store, []).append(f.sha)
    return {(store, sha): content for store, shas in by_store.items()
            for sha, content in blobs(store, shas).items()}


def tree_archive(repo: Path, commit: str, owner: int = 1000) -> bytes:
    """A tar of the files of ``commit`` (modes and symlinks kept; submodules filled as
    :func:`state_files` says, else empty folders), owned by ``owner``. Raises SandboxError
    when the commit is not in ``repo``."""
    files = state_files(repo, commit)
    stored = state_blobs(files)
    contents = {f.path: stored[(f.store, f.sha)] for f in files if f.kind == "blob"}
    by_path = {f.path: contents[f.path] for f in files if f.kind == "blob" and f.mode != "120000"}
    generated = generated_version_files(by_path)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, data in generated.items():
            info = tarfile.TarInfo(path)
            info.uid = info.gid = owner
            info.mtime, info.size, info.mode = 946684800, len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for f in files:
            info = tarfile.TarInfo(f.path)
            info.uid = info.gid = owner
            info.mtime = 946684800
            if f.kind == "commit":  # a submodule no store holds: its folder, empty
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif f.mode == "120000":
                info.type = tarfile.SYMTYPE
                info.linkname = contents[f.path].decode("utf-8", "replace")
                tar.addfile(info)
            else:
                data = contents[f.path]
                info.size, info.mode = len(data), 0o755 if f.mode == "100755" else 0o644
                tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def tree_entries(repo: Path, commit: str, *paths: str) -> list[tuple[str, str, str, str]]:
    """(mode, kind, object id, path) of every file of ``commit`` (or of ``paths`` only)."""
    listing = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths)
    return [_entry(item) for item in listing.split(b"\0") if item]


def _entry(item: bytes) -> tuple[str, str, str, str]:
    meta, path = item.split(b"\t", 1)
    mode, kind, sha = meta.decode().split(" ")
    return mode, kind, sha, path.decode("utf-8", "surrogateescape")


def blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    """Every blob's content, read in one `git cat-file --batch` pass."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return {}
    out = _git(repo, "cat-file", "--batch", stdin="\n".join(wanted).encode() + b"\n")
    found: dict[str, bytes] = {}
    at = 0
    for sha in wanted:
        end = out.index(b"\n", at)
        header = out[at:end].split(b" ")
        if len(header) != 3:
            raise SandboxError(f"git cat-file could not read blob {sha}")
        size = int(header[2])
        found[sha] = out[end + 1:end + 1 + size]
        at = end + 1 + size + 1
    return found


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          check=False)
    if proc.returncode != 0:
        raise SandboxError(f"git {args[0]} {args[-1] if stdin is None else ''} failed in "
                           f"{repo.name}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
