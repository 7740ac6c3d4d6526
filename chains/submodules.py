"""The submodules a commit records: where each lives, its name, its URL and its commit.

One reading for the two places that need them: the mirror fetches their commits into its
module stores (`modules/<name>`, where `git submodule update` keeps them too), and a sandbox
fills each submodule's folder from the store that holds its commit (sandbox.tree).
"""

from __future__ import annotations

import posixpath
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Submodule:
    path: str
    name: str
    """The module store's name (`.gitmodules`' section; the path unless it says otherwise)."""
    url: str
    """As `.gitmodules` gives it; "" when it gives none."""
    commit: str


def submodules(repo: Path, commit: str, links: Mapping[str, str] | None = None
               ) -> list[Submodule]:
    """The submodules ``commit`` of the git repository ``repo`` records (gitlinks of its tree:
    path -> commit, read here unless ``links`` gives them), with their names and URLs from
    its `.gitmodules`. Names and paths that would leave their folder are left out, as git
    refuses them."""
    if links is None:
        tree = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit)
        links = {}
        for item in tree.split(b"\0"):
            meta, _, raw = item.partition(b"\t")
            if meta.startswith(b"160000 commit "):
                links[raw.decode("utf-8", "surrogateescape")] = meta.split(b" ")[2].decode()
    if not links:
        return []
    names: dict[str, str] = {}
    urls: dict[str, str] = {}
    listing = _git(repo, "config", "-z", "--blob", f"{commit}:.gitmodules", "--get-regexp",
                   r"^submodule\..*\.(path|url)$")
    for item in listing.split(b"\0"):
        key, _, value = item.decode("utf-8", "surrogateescape").partition("\n")
        name, _, field = key.removeprefix("submodule.").rpartition(".")
        if field == "path":
            names[value] = name
        elif field == "url":
            urls[name] = value
    found = []
    for path, sha in links.items():
        name = names.get(path, path)
        if _stays_inside(path) and _stays_inside(name):
            found.append(Submodule(path, name, urls.get(name, ""), sha))
    return found


def resolved_url(url: str, superproject: str) -> str | None:
    """``url`` as fetched beside ``superproject`` (a relative `../other.git` is resolved
    against it, as git does), or None when it points to another host or scheme: a
    repository's `.gitmodules` must not make this machine fetch from wherever it names."""
    if url.startswith(("./", "../")):
        base = superproject.rstrip("/")
        for part in url.split("/"):
            if part == "..":
                base = base.rpartition("/")[0]
            elif part not in ("", "."):
                base = f"{base}/{part}"
        url = base
    mine, theirs = urlsplit(superproject), urlsplit(url)
    if (theirs.scheme, theirs.hostname, theirs.port) != (mine.scheme, mine.hostname, mine.port) \
            or theirs.scheme not in ("https", "file") or theirs.username or theirs.password:
        return None
    # On this machine (DAVINCI_MIRROR_URL's `ROOT/owner/name.git`), only under ROOT.
    root = posixpath.dirname(posixpath.dirname(mine.path.rstrip("/")))
    if theirs.scheme == "file" and not posixpath.normpath(theirs.path).startswith(f"{root}/"):
        return None
    return url


def _stays_inside(path: str) -> bool:
    return bool(path) and not path.startswith("/") and \
        all(part not in ("", ".", "..") for part in path.split("/"))


def _git(repo: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    return proc.stdout if proc.returncode == 0 else b""
