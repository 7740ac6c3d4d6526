"""Which Python a repository state runs on: chosen from what the project declares.

Old code does not run on a new interpreter (`collections.Mapping` is gone in 3.10, old pins
have no wheels for it), and new code does not run on an old one. Base images are built
offline for several Debian suites (`davinci sandbox build-base --python X.Y`); each carries
its version in the label `davinci.python`. For one repository state the choice is:

1. the versions ``requires-python`` (or ``python_requires``) allows, among those built;
2. of those, the newest the project says it supports (trove classifiers, tox's envlist, the
   CI matrix); when it names none that was built, the newest below the newest it names
   (an old project runs best on the oldest newer Python), else the oldest allowed;
3. with nothing declared, the default image.

Declarations are read from the repository as data; nothing of it runs.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from sandbox.base import SandboxError, SandboxUnavailable

PYTHON_LABEL = "davinci.python"
SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
"""The Debian suite whose python3 is each version: what `build-base --python` can build."""
DECLARING_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", ".travis.yml",
                   "noxfile.py", ".python-version")
WORKFLOWS = ".github/workflows"
VERSION = re.compile(r"^3\.\d{1,2}$")


@dataclass(frozen=True)
class Declared:
    """What a repository state says about its Python."""

    requires: str = ""
    """The ``requires-python`` specifier ('' when none)."""
    supported: tuple[str, ...] = ()
    """Versions named as supported (classifiers, tox envlist, CI matrix), oldest first."""
    sources: tuple[str, ...] = ()
    """Where those came from, for the record."""


@dataclass(frozen=True)
class PythonChoice:
    version: str
    """The chosen X.Y ('' when the default image's version is unknown)."""
    image: str
    reason: str

    def describe(self) -> str:
        return f"Python {self.version or '(default)'} ({self.image}): {self.reason}"


def suite_for(version: str) -> str:
    """The Debian suite that ships ``version``; a clear error for any other."""
    if version not in SUITES:
        raise SandboxError(f"no base image recipe for Python {version}; choose one of "
                           + ", ".join(SUITES))
    return SUITES[version]


def image_for(default_image: str, version: str) -> str:
    """The tag of the base image for ``version``: the default image's name, tag pyX.Y."""
    repository = default_image.rsplit(":", 1)[0] if ":" in default_image.split("/")[-1] \
        else default_image
    return f"{repository}:py{version}"


def base_images(engine: docker.DockerClient, default_image: str) -> dict[str, str]:
    """Version -> image of every base image on this engine that says its Python.

    The default image stands for its own version; other versions are the images tagged
    ``image_for(default_image, X.Y)``.
    """
    found: dict[str, str] = {}
    for image in engine.images.list(filters={"label": "davinci.base=1"}):
        version = (image.labels or {}).get(PYTHON_LABEL, "")
        if not VERSION.match(version):
            continue
        for tag in image.tags:
            if tag == default_image or tag == image_for(default_image, version):
                found.setdefault(version, tag)
                if tag == default_image:
                    found[version] = tag
    return found


def python_for(engine: docker.DockerClient, repo: Path, commit: str, default_image: str,
               wanted: str = "auto") -> PythonChoice:
    """The base image for ``commit`` of ``repo``: ``wanted`` `auto` chooses by what the
    state declares (:func:`choose_python`); a version X.Y asks for that one's image."""
    available = base_images(engine, default_image)
    default = next((v for v, image in available.items() if image == default_image), "")
    if wanted != "auto":
        if wanted not in available:
            raise SandboxUnavailable(
                f"no base image for Python {wanted} (DAVINCI_PYTHON); build it with "
                f"`davinci sandbox build-base --python {wanted}`")
        return PythonChoice(wanted, available[wanted], "asked for (DAVINCI_PYTHON)")
    return choose_python(declared_python(declaring_files(repo, commit)), available,
                         default_image, default)


def declared_python(files: Mapping[str, bytes]) -> Declared:
    """What ``files`` (path -> content, see :func:`declaring_files`) declare."""
    requires = ""
    supported: set[str] = set()
    sources: list[str] = []

    def found(source: str, versions: set[str]) -> None:
        versions = {v for v in versions if VERSION.match(v)}
        if versions:
            supported.update(versions)
            sources.append(f"{source} {', '.join(sorted(versions, key=_key))}")

    for name, raw in sorted(files.items()):
        text = raw.decode("utf-8", "replace")
        if name == "pyproject.toml":
            requires = requires or _toml_requires(text)
        elif name == "setup.cfg":
            requires = requires or _cfg_requires(text)
        elif name == "setup.py":
            requires = requires or _setup_py_requires(text)
        if name in ("pyproject.toml", "setup.cfg", "setup.py"):
            found(f"{name} classifiers",
                  set(re.findall(r"Programming Language :: Python :: (3\.\d+)", text)))
        elif name in ("tox.ini", "noxfile.py"):
            found(name, _tox_versions(text) | set(re.findall(r"['\"](3\.\d{1,2})['\"]", text)))
        elif name == ".python-version":
            found(name, set(re.findall(r"^(3\.\d{1,2})", text, re.MULTILINE)))
        else:  # CI configuration: the versions its Python matrix names
            found(name, _ci_versions(text))
    ordered = tuple(sorted(supported, key=_key))
    return Declared(requires, ordered, tuple(sources))


def declaring_files(repo: Path, commit: str) -> dict[str, bytes]:
    """The files of ``commit`` that may declare its Python, read as data."""
    from sandbox.tree import blobs, tree_entries

    entries = tree_entries(repo, commit, *DECLARING_FILES, WORKFLOWS)
    found = {path: sha for _, kind, sha, path in entries
             if kind == "blob" and (path in DECLARING_FILES or (
                 path.startswith(WORKFLOWS + "/") and path.endswith((".yml", ".yaml"))))}
    contents = blobs(repo, list(found.values()))
    return {path: contents[sha] for path, sha in found.items()}


def choose_python(declared: Declared, available: Mapping[str, str], default_image: str,
                  default: str = "") -> PythonChoice:
    """The base image for a state that declares ``declared``, among ``available``
    (version -> image); ``default`` is the default image's version."""
    allowed = sorted((v for v in available if _allows(declared.requires, v)), key=_key)
    requires = f"requires-python {declared.requires}" if declared.requires else ""
    if not allowed:
        why = (f"{requires} allows none of the built versions ("
               f"{', '.join(sorted(available, key=_key)) or 'none labelled'})") if requires \
            else "no base image says its Python"
        return PythonChoice(default, default_image, why + "; the default image is used")
    said = "; ".join(filter(None, [requires, *declared.sources]))
    if declared.supported:
        named = [v for v in allowed if v in declared.supported]
        newest = declared.supported[-1]
        below = [v for v in allowed if _key(v) <= _key(newest)]
        if named:
            version, how = named[-1], "the newest built version the project names"
        elif below:
            version, how = below[-1], f"the newest built version up to {newest}"
        else:
            version, how = allowed[0], f"the oldest built version after {newest}"
        return PythonChoice(version, available[version], f"{how} ({said})")
    if default in allowed:
        return PythonChoice(default, default_image,
                            f"the default ({said})" if said else "nothing declared: the default")
    version = allowed[-1]
    return PythonChoice(version, available[version],
                        f"the newest built version allowed ({said})")


def _tox_versions(text: str) -> set[str]:
    """Versions tox environment names carry: `py38`, `py3{8,9}`, `py{39,310}`."""
    names = set(re.findall(r"\bpy(3\d{1,2})\b", text))
    for prefix, inside in re.findall(r"\bpy(3?)\{([\d,\s]+)\}", text):
        names |= {prefix + item.strip() for item in inside.split(",") if item.strip()}
    return {f"3.{name[1:]}" for name in names if name.startswith("3") and len(name) in (2, 3)}


def _ci_versions(text: str) -> set[str]:
    """Versions a CI file's Python settings name: `python-version: [3.8, "3.9"]`, a matrix
    entry `{python: '3.9'}`, travis' `python:` list, `tox: py39`."""
    versions: set[str] = set()
    setting = re.compile(r"\b(?:python-version|python|pythons|toxenv|tox)\s*:[ \t]*(.*)$",
                         re.MULTILINE)
    for match in setting.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        indent = len(text[line_start:match.start()]) - len(text[line_start:match.start()].lstrip())
        block = [match.group(1)]
        for line in text[match.end():].splitlines()[1:]:  # a following "- 3.8" list
            stripped = line.strip()
            if not stripped.startswith("-") or len(line) - len(line.lstrip()) < indent:
                break
            block.append(stripped)
        for chunk in block:
            chunk = re.split(r"[,}]\s*\w[\w-]*\s*:", chunk)[0]  # this setting's value only
            versions |= set(re.findall(r"(?<![\d.])(3\.\d{1,2})(?!\d)", chunk))
            versions |= _tox_versions(chunk)
    return versions


def _toml_requires(text: str) -> str:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return ""
    value = data.get("project", {}).get("requires-python") or \
        data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python", "")
    return _poetry(value) if isinstance(value, str) else ""


def _poetry(value: str) -> str:
    """A poetry constraint (`^3.8`, `~3.9`) as a PEP 440 specifier."""
    value = value.strip()
    if match := re.fullmatch(r"\^(\d+)\.(\d+)(?:\.\d+)?", value):
        return f">={match[1]}.{match[2]},<{int(match[1]) + 1}"
    if match := re.fullmatch(r"~(\d+)\.(\d+)(?:\.\d+)?", value):
        return f">={match[1]}.{match[2]},<{match[1]}.{int(match[2]) + 1}"
    return value


def _cfg_requires(text: str) -> str:
    config = configparser.ConfigParser(interpolation=None)
    with contextlib.suppress(configparser.Error):
        config.read_string(text)
        return config.get("options", "python_requires", fallback="").strip()
    return ""


def _setup_py_requires(text: str) -> str:
    match = re.search(r"python_requires\s*=\s*(['\"])(.+?)\1", text)
    if match is None:
        return ""
    with contextlib.suppress(ValueError, SyntaxError):
        return str(ast.literal_eval(match.group(1) + match.group(2) + match.group(1)))
    return ""


def _allows(requires: str, version: str) -> bool:
    if not requires:
        return True
    try:
        specifier = SpecifierSet(requires)
    except InvalidSpecifier:
        return True  # an unreadable specifier restricts nothing
    # A version "allowed" when any of its releases is (>=3.9.2 allows 3.9).
    return any(specifier.contains(f"{version}.{patch}", prereleases=True)
               for patch in (0, 5, 10, 20, 99))


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
