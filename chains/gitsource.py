"""Pull requests from a local git clone, without network.

GitHub leaves these traces on the default branch: merge commits ("Merge pull request #N from
owner/branch", the PR title on the following line, or "Title (#N)" when the repository's
merge message is set to the pull request's title) and squash merges ("Title (#N)", one
parent).
The whole first-parent history is read in one `git log` stream with each commit's diff against
its first parent, so mining costs one process however long the history is; `git blame` runs
only for fixes.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from chains import substance
from chains.collector import fewer_collections
from chains.diff import parse_diff
from chains.model import UNTRACED, Commit, FileChange, LineRange, PullRequest

_MERGE = re.compile(r"^Merge pull request #(?P<number>\d+) from (?P<branch>\S+)")
_SQUASH = re.compile(r"^(?P<title>.+?) \(#(?P<number>\d+)\)\s*$")
MAX_SHOWN = 2_000_000
_BLAME_HEADER = re.compile(rb"^([0-9a-f]{40}) (\d+) (\d+)")
_NONCE = uuid.uuid4().hex[:16]
RECORD, FIELD = f"\x1e{_NONCE}\x1e", f"\x1f{_NONCE}\x1f"
"""Separators of `git log` records and fields: control characters around a token drawn per
process, so no commit message or diff (which may hold any byte) can contain one."""
LOG_FORMAT = f"--format={RECORD}%H{FIELD}%P{FIELD}%ct{FIELD}%an{FIELD}%B{FIELD}"
"""One commit per record, its diff (when asked for) after the last field: `_parse_record`."""


class GitSourceError(RuntimeError):
    """The path cannot be mined; the message says why and what to do."""


@dataclass(frozen=True)
class _Raw:
    sha: str
    parents: tuple[str, ...]
    timestamp: int
    author: str
    message: str
    diff: str
    files: tuple[FileChange, ...] = ()
    """The diff, parsed; a PR's record keeps these instead of the text."""


YEAR = 365 * 24 * 3600
IMPORTED_REUSES = 3
"""Numbers named twice that make the older merges an imported history, not a stray title."""
SYNC_CARRIED = 3
"""Other PRs' merges a PR must bring to be a branch sync; one is enough when its title says
it merges or syncs ("Merge main into stable")."""
_SYNC_TITLE = re.compile(r"\b(merg(e|es|ed|ing)|sync\w*)\b", re.IGNORECASE)


@dataclass
class _Graph:
    """Every commit reachable from the mined ref (no diffs), its first-parent line, and what
    each mainline commit brought in: the commits reachable from its second parents and not
    from its first (`merge^1..merge^2`), so a branch that merged a maintenance line or the
    default branch into itself is not credited with their commits."""

    nodes: dict[str, _Raw]
    mainline: list[str]
    """First-parent commits, oldest first."""
    position: dict[str, int]
    _brought: dict[str, tuple[str, ...]]
    _numbers: list[tuple[int, int]]
    """(timestamp, PR number) of the mainline commits, by position (0: not a PR)."""

    @classmethod
    def read(cls, path: Path, ref: str) -> _Graph:
        listing = git(path, "log", "--topo-order", LOG_FORMAT, ref)
        nodes = {raw.sha: raw for raw in map(_parse_record, filter(None, listing.split(RECORD)))}
        order = {sha: i for i, sha in enumerate(nodes)}  # newest first, parents after children
        mainline: list[str] = []
        tip: str | None = next(iter(nodes), None)
        while tip is not None and tip in nodes:
            mainline.append(tip)
            tip = next(iter(nodes[tip].parents), None)
        mainline.reverse()
        reached: set[str] = set()  # always closed under "parent of"
        brought: dict[str, tuple[str, ...]] = {}
        for sha in mainline:
            stack = [p for p in nodes[sha].parents[1:] if p in nodes]
            found: list[str] = []
            while stack:
                commit = stack.pop()
                if commit in reached:
                    continue
                reached.add(commit)
                found.append(commit)
                stack.extend(p for p in nodes[commit].parents if p in nodes and p not in reached)
            reached.add(sha)
            if found:
                brought[sha] = tuple(sorted(found, key=order.__getitem__, reverse=True))
        numbers = [(nodes[sha].timestamp, _pr_number(nodes[sha]) or 0) for sha in mainline]
        return cls(nodes, mainline, {sha: i for i, sha in enumerate(mainline)}, brought,
                   numbers)

    def brought_shas(self, sha: str) -> tuple[str, ...]:
        return self._brought.get(sha, ())

    def brought(self, sha: str) -> tuple[Commit, ...]:
        """The commits a mainline merge brought, oldest first."""
        return tuple(self.commit(c) for c in self.brought_shas(sha))

    def commit(self, sha: str) -> Commit:
        node = self.nodes[sha]
        return Commit(sha, node.message, node.author)

    def lowest_number_before(self, timestamp: int, at: int) -> int | None:
        """The lowest PR number the mainline merged in the year before ``timestamp``, up to
        position ``at``; None when it merged none."""
        lowest: int | None = None
        for i in range(min(at, len(self._numbers) - 1), -1, -1):
            stamp, number = self._numbers[i]
            if stamp < timestamp - YEAR:
                break
            if number and stamp <= timestamp and (lowest is None or number < lowest):
                lowest = number
        return lowest


def _missing_hint(error: str) -> str:
    """What to do when git could not read an object the history needs."""
    if not re.search(r"unable to read|missing blob|bad object|promisor", error):
        return ""
    return ("\nthe clone lacks objects its history needs (a partial clone made with "
            "--filter, a shallow or damaged one): mine a full clone, or complete this one "
            "with `git fetch --refetch` where its remote can be reached")


def git(path: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", "-C", str(path), "-c", "core.quotePath=false", *args],
                            capture_output=True, text=True, errors="replace")
    if check and result.returncode != 0:
        error = result.stderr.strip()
        raise GitSourceError(f"git {args[0]} failed in {path}: {error}{_missing_hint(error)}")
    return result.stdout


class GitHistory:
    """The merged PRs of a local clone's default branch."""

    def __init__(self, path: Path, repository: str | None = None, ref: str = "HEAD") -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise GitSourceError(f"{self.path} does not exist")
        # One probe: not a repository (128), no such commit (1), or shallow or not.
        probe = subprocess.run(["git", "-C", str(self.path), "rev-parse",
                                "--is-shallow-repository", "--verify", "-q", ref],
                               capture_output=True, text=True)
        if probe.returncode == 1:
            raise GitSourceError(f"{self.path} has no commits yet: nothing to mine")
        if probe.returncode != 0:
            raise GitSourceError(f"{self.path} is not a git repository")
        self.ref = ref
        self.repository = repository or repository_name(self.path)
        self.shallow = probe.stdout.split("\n", 1)[0].strip() == "true"
        self.skipped: list[str] = []
        """Why PRs that left a trace could not be read (for example a base commit gone)."""

    def pull_requests(self, since: datetime | None = None,
                      limit: int | None = None) -> list[PullRequest]:
        """Merged PRs, oldest first; ``limit`` keeps the most recent ones."""
        with fewer_collections():
            return self._read(since, limit)

    def _read(self, since: datetime | None, limit: int | None) -> list[PullRequest]:
        # Diffs are parsed as they stream by, so the history's text is never all in memory;
        # with a limit, only the latest PRs are kept at all.
        if limit == 0:
            return []
        kept: deque[_Raw] = deque(maxlen=limit)
        oldest: str | None = None  # the oldest first-parent commit read
        dropped = False
        for raw in self._log(["--first-parent", self.ref], since):
            oldest = oldest or raw.sha
            if _pr_number(raw) is not None:
                dropped = dropped or len(kept) == limit
                kept.append(replace(raw, diff="", files=tuple(parse_diff(raw.diff))))
            elif not raw.parents and (number := _traced_number(raw)) is not None:
                self.skipped.append(f"PR #{number}: its base commit is not in this clone "
                                    "(a shallow clone?)")
        history = _Graph.read(self.path, self.ref)
        start = kept[0].sha if dropped else oldest
        first = history.position.get(start, len(history.mainline)) if start \
            else len(history.mainline)
        side = self._side_pull_requests(history, [r for r in kept], first)
        ordered = sorted([*((history.position[r.sha], 1, i, r) for i, r in enumerate(kept)),
                          *((at, 0, i, r) for i, (at, r) in enumerate(side))],
                         key=lambda item: item[:3])
        prs = []
        for raw in self._own_numbering([raw for _, _, _, raw in ordered]):
            commits = history.brought(raw.sha) if raw.sha in history.position \
                else self._branch_commits(history, raw)
            pr = self._pull_request(raw, commits)
            if pr is not None:
                prs.append(pr)
        prs = self._without_syncs(prs)
        return prs[-limit:] if limit is not None else prs

    def _without_syncs(self, prs: list[PullRequest]) -> list[PullRequest]:
        """The PRs less branch syncs: a PR that brings the merges of SYNC_CARRIED or more
        other PRs, or of any when its title says it merges ("Merge main into stable (#N)"),
        carries their work, not work of its own, so the lines it brought stay theirs and
        its commits' messages do not speak for it."""
        merges = {pr.merge_commit: pr.number for pr in prs}
        kept = []
        for pr in prs:
            carried = sorted({merges[c.sha] for c in pr.commits
                              if merges.get(c.sha, pr.number) != pr.number})
            if len(carried) < SYNC_CARRIED and not (carried and _SYNC_TITLE.search(pr.title)):
                kept.append(pr)
                continue
            named = ", ".join(f"#{n}" for n in carried[:6]) + (" …" if len(carried) > 6 else "")
            self.skipped.append(f"PR #{pr.number}: a branch sync that brings {len(carried)} "
                                f"other PRs ({named}), not work of its own")
        return kept

    def _own_numbering(self, ordered: list[_Raw]) -> list[_Raw]:
        """The PRs numbered by this repository, oldest first. A number named by two merges
        is the latest one's (a project's history imported with its own numbering comes
        first, and numbers start again after it); when IMPORTED_REUSES or more numbers are
        named twice, every PR merged before the first of the latest ones is of that imported
        history, and none of them is mined (its numbers name other PRs and issues here)."""
        newest = {_pr_number(raw): raw.sha for raw in ordered}
        displaced = [at for at, raw in enumerate(ordered) if newest[_pr_number(raw)] != raw.sha]
        if not displaced:
            return ordered
        reused = sorted({n for at in displaced if (n := _pr_number(ordered[at])) is not None})
        named = f"{', '.join(f'#{n}' for n in reused[:12])}{' …' if len(reused) > 12 else ''}"
        if len(reused) < IMPORTED_REUSES:
            self.skipped.append(f"PRs {named}: each number names two merged PRs; only the "
                                "latest of each is mined")
            return [raw for raw in ordered if newest[_pr_number(raw)] == raw.sha]
        start = min(at for at, raw in enumerate(ordered)
                    if _pr_number(raw) in reused and newest[_pr_number(raw)] == raw.sha)
        until = datetime.fromtimestamp(ordered[start - 1].timestamp, UTC).date()
        self.skipped.append(f"{start} PRs merged up to {until}: an imported history with its "
                            f"own numbering ({len(reused)} of its numbers, {named}, name later "
                            "PRs of this repository), so none of them is mined")
        return ordered[start:]

    def _log(self, revisions: list[str], since: datetime | None = None,
             stdin: str | None = None) -> Iterator[_Raw]:
        """Commits with their diff against their first parent, streamed."""
        args = ["log", "--reverse", "--diff-merges=first-parent", "-p", "-U0", "-M",
                "--no-color", "--no-ext-diff", LOG_FORMAT]
        if since is not None:
            args.append(f"--since={since.isoformat()}")
        process = subprocess.Popen(["git", "-C", str(self.path), "-c", "core.quotePath=false",
                                    *args, *revisions], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, errors="replace")
        assert process.stdout is not None and process.stdin is not None
        process.stdin.write(stdin or "")
        process.stdin.close()
        buffer = ""
        for chunk in iter(lambda: process.stdout.read(1 << 16), ""):  # type: ignore[union-attr]
            buffer += chunk
            *records, buffer = buffer.split(RECORD)
            for record in records:
                if record:
                    yield _parse_record(record)
        if buffer:
            yield _parse_record(buffer)
        if process.wait() != 0:
            error = (process.stderr.read() if process.stderr else "").strip()
            raise GitSourceError(f"git log failed in {self.path}: {error}{_missing_hint(error)}")

    def _side_pull_requests(self, history: _Graph, mainline_prs: list[_Raw],
                            first: int) -> list[tuple[int, _Raw]]:
        """PRs that reached the default branch only through a second parent (a maintenance
        line merged back, a merge made the wrong way round), each with the position of the
        mainline commit that brought it. A number the mainline already has, or one below
        every number the mainline merged in the year before (a fork's own "Merge pull
        request #2" inside a contributor's branch), is not this repository's PR."""
        taken = {_pr_number(raw) for raw in mainline_prs}
        found: dict[str, int] = {}
        for at in range(first, len(history.mainline)):
            arrival = history.mainline[at]
            own = self._own_commits(history, arrival)
            for sha in history.brought_shas(arrival):
                node = history.nodes[sha]
                number = _pr_number(node)
                if number is None or number in taken:
                    continue
                if sha in own:
                    self.skipped.append(f"#{number} ({sha[:12]}): a commit of PR #{own[sha]} "
                                        "titled like a PR (copied from elsewhere), not a PR "
                                        "of this repository")
                    continue
                floor = history.lowest_number_before(node.timestamp, at)
                if floor is not None and number < floor:
                    self.skipped.append(f"PR #{number} ({sha[:12]}): a merge inside a branch "
                                        "that numbers its own PRs (a fork), not this "
                                        "repository's")
                    continue
                taken.add(number)
                found[sha] = at
        if not found:
            return []
        raws = {raw.sha: replace(raw, diff="", files=tuple(parse_diff(raw.diff)))
                for raw in self._log(["--no-walk=unsorted", "--stdin"],
                                     stdin="".join(f"{sha}\n" for sha in found))}
        return [(at, raws[sha]) for sha, at in found.items() if sha in raws]

    def _own_commits(self, history: _Graph, arrival: str) -> dict[str, int]:
        """Commits titled "… (#N)" that are a PR's own work, not PRs: on the line of a PR's
        branch (from its merge's second parent down its first parents to where it left the
        base), among what ``arrival`` brought -> that PR's number. A PR squash-merged onto a
        maintenance line that a branch merged in is not on that branch's own line."""
        brought = history.brought_shas(arrival)
        if not any(len(history.nodes[sha].parents) == 1 and _pr_number(history.nodes[sha])
                   for sha in brought):
            return {}
        own: dict[str, int] = {}
        for merge in (arrival, *brought):
            node = history.nodes[merge]
            number = _pr_number(node)
            if number is None or len(node.parents) < 2 or \
                    _SYNC_TITLE.search(_title_and_body(node)[0]):
                continue
            base = git(self.path, "merge-base", *node.parents[:2], check=False).strip()
            titled: list[str] = []
            tip: str | None = node.parents[1]
            while tip is not None and tip in history.nodes and tip != base:
                if len(history.nodes[tip].parents) == 1 and _pr_number(history.nodes[tip]):
                    titled.append(tip)
                tip = next(iter(history.nodes[tip].parents), None)
            if len(titled) < SYNC_CARRIED:  # more: a line of squash-merged PRs, synced
                own.update((sha, number) for sha in titled if sha not in own)
        return own

    def _branch_commits(self, history: _Graph, raw: _Raw) -> tuple[Commit, ...]:
        """A side merge's own commits: reachable from its second parent, not its first."""
        if len(raw.parents) < 2:
            return ()
        listed = git(self.path, "rev-list", "--topo-order", "--reverse", raw.parents[1],
                     "--not", raw.parents[0]).split()
        return tuple(history.commit(sha) for sha in listed if sha in history.nodes)

    def _pull_request(self, raw: _Raw, side: tuple[Commit, ...]) -> PullRequest | None:
        number = _pr_number(raw)
        if number is None or not raw.parents:
            return None
        title, body = _title_and_body(raw)
        commits = side or (Commit(raw.sha, raw.message, raw.author),)
        authors = [c.author for c in commits if c.author]
        return PullRequest(
            repository=self.repository, number=number, title=title.strip(),
            body=body.strip(), author=authors[0] if authors else raw.author,
            base_commit=raw.parents[0], merge_commit=raw.sha,
            merged_at=datetime.fromtimestamp(raw.timestamp, UTC), commits=commits,
            files=raw.files)


def _title_and_body(raw: _Raw) -> tuple[str, str]:
    """A PR's title and body from its merge's message: the line after "Merge pull request
    #N from …", or the subject less its "(#N)"."""
    subject, _, rest = raw.message.partition("\n")
    if _MERGE.match(subject):
        title, _, body = rest.strip().partition("\n")
        return title.strip() or subject, body
    match = _SQUASH.match(subject)
    return (match.group("title") if match else subject), rest


def _pr_number(raw: _Raw) -> int | None:
    """The PR a commit merged: a merge commit with GitHub's message (either shape), or a
    squash; None for anything else (a merge of another branch, a plain commit)."""
    subject = raw.message.partition("\n")[0]
    match = _MERGE.match(subject)
    if match and len(raw.parents) > 1:
        return int(match.group("number"))
    match = _SQUASH.match(subject)
    if match and raw.parents:
        return int(match.group("number"))
    return None


def _traced_number(raw: _Raw) -> int | None:
    subject = raw.message.partition("\n")[0]
    match = _MERGE.match(subject) or _SQUASH.match(subject)
    return int(match.group("number")) if match else None


def _parse_record(record: str) -> _Raw:
    sha, parents, stamp, author, message, diff = record.split(FIELD, 5)
    return _Raw(sha.strip(), tuple(parents.split()), int(stamp or 0), author,
                message.strip(), diff)


class GitBlame:
    """`git blame` and file contents in a local clone or bare mirror.

    Blame ignores whitespace and follows lines moved or copied (`-w -M -C`), and looks
    through the revisions the repository's `.git-blame-ignore-revs` names (at the commit
    blamed) and those the caller passes (format-only PRs' commits).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._reader: subprocess.Popen[bytes] | None = None
        self._ignore_files: dict[frozenset[str], str] = {}
        self._changes: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {}
        self._scratch = tempfile.TemporaryDirectory(prefix="davinci-blame-")

    def lines(self, commit: str, path: str, ranges: tuple[LineRange, ...],
              ignore: frozenset[str] = frozenset(),
              follow: bool = True) -> dict[int, tuple[str, str]]:
        """Line number at ``commit`` -> (sha of the commit that last changed it, its text);
        ``follow=False``: the commit that put the line where it is, moved or copied.
        `UNTRACED` for a line whose origin blame could only guess, looking through
        ``ignore``d commits."""
        if not ranges:
            return {}
        args = ["git", "-C", str(self.path), "blame", "--porcelain", "-w"]
        if follow:
            args += ["-M", "-C"]
        revs = self._ignored_at(commit) | ignore
        if revs:
            args += ["--ignore-revs-file", self._ignore_file(revs)]
        for r in ranges[:200]:
            args += ["-L", f"{r.start},{r.end}"]
        result = subprocess.run([*args, commit, "--", path], capture_output=True)
        if result.returncode != 0:
            return {}  # the file or those lines are not at that commit (a rename, a rewrite)
        found: dict[int, tuple[str, str]] = {}
        origins: dict[int, tuple[str, int]] = {}  # line -> (path in the commit, line there)
        paths: dict[str, str] = {}
        sha, source, line = "", 0, 0
        for raw in result.stdout.split(b"\n"):
            match = _BLAME_HEADER.match(raw)
            if match:
                sha, source, line = (match.group(1).decode(), int(match.group(2)),
                                     int(match.group(3)))
            elif raw.startswith(b"filename ") and sha:
                paths[sha] = raw[len(b"filename "):].decode("utf-8", "replace")
            elif raw.startswith(b"\t") and sha:
                found[line] = (sha, raw[1:].decode("utf-8", "replace"))
                origins[line] = (paths.get(sha, ""), source)
        if revs:
            self._untrace_guesses(found, origins)
        return found

    def _untrace_guesses(self, found: dict[int, tuple[str, str]],
                         origins: dict[int, tuple[str, int]]) -> None:
        """Give `UNTRACED` as the commit of the lines blame credited, through an ignored
        revision, to a line they cannot have come from (`substance.traced`): git guesses an
        origin for every line an ignored commit wrote, a neighbour when none is alike."""
        texts: dict[tuple[str, str], list[str] | None] = {}
        for number, (sha, line) in list(found.items()):
            where, source = origins[number]
            if not where or where.startswith('"'):  # a path git quoted: not checked
                continue
            if (sha, where) not in texts:
                shown = self.show(sha, where)
                texts[(sha, where)] = shown.split("\n") if shown is not None else None
            text = texts[(sha, where)]
            if text is not None and not (0 < source <= len(text)
                                         and substance.traced(line, text[source - 1])):
                found[number] = (UNTRACED, line)

    def changed_lines(self, sha: str, where: Callable[[str], bool] | None = None
                      ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(removed, added) lines of a commit's change against its first parent, in every
        file or in those whose path ``where`` accepts."""
        if sha not in self._changes:
            diff = subprocess.run(["git", "-C", str(self.path), "show", "--format=", "-U0",
                                   "--no-ext-diff", "--no-color", "--diff-merges=first-parent",
                                   sha], capture_output=True).stdout
            files = parse_diff(diff.decode("utf-8", "replace"), with_lines=True)
            if len(self._changes) > 4096:
                self._changes.clear()
            self._changes[sha] = tuple((f.path, f.removed_lines, f.added_lines) for f in files)
        kept = [(removed, added) for path, removed, added in self._changes[sha]
                if where is None or where(path)]
        return (tuple(line for removed, _ in kept for line in removed),
                tuple(line for _, added in kept for line in added))

    def show(self, commit: str, path: str) -> str | None:
        """The text of ``path`` at ``commit`` (None: absent, binary or over 2 MB), read
        through one `git cat-file --batch` for all calls."""
        data = self._object(f"{commit}:{path}")
        if data is None or len(data) > MAX_SHOWN or b"\0" in data[:8000]:
            return None
        return data.decode("utf-8", "replace")

    def message(self, sha: str) -> str:
        found = self._read(sha)
        if found is None or found[0] != b"commit":
            return ""
        return found[1].partition(b"\n\n")[2].decode("utf-8", "replace")

    def removed_by(self, commit: str, path: str, line: str) -> str | None:
        """The latest commit up to ``commit`` after which ``path`` holds ``line`` fewer
        times than before it (`git log -S`, first parents' side)."""
        found = subprocess.run(["git", "-C", str(self.path), "log", "-n", "5", "--format=%H",
                                "--no-ext-diff", f"-S{line}", commit, "--", path],
                               capture_output=True, text=True, errors="replace")
        for sha in found.stdout.split():
            before, after = self.show(f"{sha}^", path), self.show(sha, path)
            if before is not None and before.count(line) > (after or "").count(line):
                return sha
        return None

    def __enter__(self) -> GitBlame:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the `git cat-file` reader and remove the scratch files."""
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.kill()
            self._reader.wait()
            self._reader = None
        self._scratch.cleanup()

    def _object(self, spec: str) -> bytes | None:
        found = self._read(spec)
        return found[1] if found is not None and found[0] == b"blob" else None

    def _read(self, spec: str) -> tuple[bytes, bytes] | None:
        """(type, content) of an object, or None when it is missing."""
        if "\n" in spec:
            return None
        if self._reader is None or self._reader.poll() is not None:
            self._reader = subprocess.Popen(
                ["git", "-C", str(self.path), "cat-file", "--batch"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self._reader.stdin is not None and self._reader.stdout is not None
        self._reader.stdin.write(spec.encode() + b"\n")
        self._reader.stdin.flush()
        header = self._reader.stdout.readline().split()
        if len(header) != 3:  # "<spec> missing" (or ambiguous)
            return None
        return header[1], self._reader.stdout.read(int(header[2]) + 1)[:-1]

    def _ignored_at(self, commit: str) -> frozenset[str]:
        listed = self._object(f"{commit}:.git-blame-ignore-revs") or b""
        return frozenset(re.findall(r"(?m)^([0-9a-f]{40})\b", listed.decode("ascii", "replace")))

    def _ignore_file(self, revs: frozenset[str]) -> str:
        """A file naming ``revs`` that exist here (git refuses names it cannot find)."""
        if revs not in self._ignore_files:
            known = [rev for rev in sorted(revs) if self._exists(rev)]
            target = Path(self._scratch.name) / f"ignore-{len(self._ignore_files)}"
            target.write_text("".join(f"{rev}\n" for rev in known))
            if len(self._ignore_files) > 64:
                self._ignore_files.clear()
            self._ignore_files[revs] = str(target)
        return self._ignore_files[revs]

    def _exists(self, rev: str) -> bool:
        found = self._read(rev)
        return found is not None and found[0] == b"commit"


def repository_name(path: Path) -> str:
    """owner/name from the `origin` remote, else `local/<directory>`."""
    url = subprocess.run(["git", "-C", str(path), "config", "--get", "remote.origin.url"],
                         capture_output=True, text=True).stdout.strip()
    match = re.search(r"[:/](?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?$", url)
    if match:
        return f"{match.group('owner')}/{match.group('name')}"
    return f"local/{Path(path).resolve().name}"
