"""The Docker backend: one locked-down container per sandbox.

The container runs as the unprivileged user of the image (uid 1000), with no network, all
capabilities dropped, `no-new-privileges`, a read-only root file system, and size-capped tmpfs
mounts for the work tree (`/work`) and `/tmp` (the disk-write limit); memory, CPU and pids are
capped by the engine. Each command runs under `timeout -s KILL`, which kills its whole process
group at the deadline. Every container carries the label `davinci.sandbox=1` and the host and
process that made it (`davinci.owner`), so `davinci sandbox gc` removes the leftovers of a
crashed process and leaves the sandboxes of live workers alone.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from sandbox.base import (
    ExecResult,
    PatchConflict,
    PathOutsideWorkTree,
    SandboxError,
    SandboxUnavailable,
)
from sandbox.output import DEFAULT_CAP, CappedBuffer
from sandbox.processes import END_PROCESSES
from sandbox.tree import SEED, tree_archive

LABEL = "davinci.sandbox"
KEEPER = "65534:65534"
"""The user of the container's own process: not the agent's (1000)."""
OWNER_LABEL = "davinci.owner"
WORKDIR = "/work/repo"
OFFLINE = {"PIP_RETRIES": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
"""What a sandbox with no network tells tools that would reach one: pip fails a lookup at
once instead of retrying it five times with back-off (about 25 s a package), which made a
suite whose tests call pip (pip-tools) outlast the test timeout, before and after the gold
patch alike."""


@dataclass(frozen=True)
class Limits:
    memory: str = "2g"
    cpus: float = 2.0
    pids: int = 256
    work_size: str = "1g"
    """Size of the writable work tree (tmpfs): the disk-write limit."""
    tmp_size: str = "512m"
    output_cap: int = DEFAULT_CAP


def client() -> docker.DockerClient:
    try:
        engine = docker.from_env(timeout=30)
        engine.ping()
    except DockerException as exc:
        raise SandboxUnavailable(f"no Docker engine answers: {exc}") from exc
    return engine


class DockerSandbox:
    def __init__(self, repo: Path, commit: str, image: str, limits: Limits | None = None,
                 engine: docker.DockerClient | None = None) -> None:
        self.repo = repo
        self.limits = limits or Limits()
        self.engine = engine or client()
        self.start_commit = commit
        self._seed = ""
        """The sandbox repository's own commit of the start state (not the source's)."""
        try:
            self.engine.images.get(image)
        except ImageNotFound as exc:
            raise SandboxUnavailable(f"sandbox image {image} is missing; build it with "
                                     "`davinci sandbox build-base`") from exc
        # The container's own process runs as a user the agent is not, so ending every
        # process of the agent's user (end_processes) leaves the container up.
        self.container = self.engine.containers.create(
            image, command=["sleep", "infinity"], user=KEEPER, working_dir="/work",
            network_mode="none", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], mem_limit=self.limits.memory,
            memswap_limit=self.limits.memory, nano_cpus=int(self.limits.cpus * 1e9),
            pids_limit=self.limits.pids, init=True,
            tmpfs={"/work": f"size={self.limits.work_size},exec,uid=1000,gid=1000,mode=0755",
                   "/tmp": f"size={self.limits.tmp_size},exec,mode=1777",  # noqa: S108
                   "/home/agent": "size=64m,uid=1000,gid=1000,mode=0755"},
            labels=labels(),
            environment={"HOME": "/home/agent", "LANG": "C.UTF-8",
                         "GIT_CONFIG_NOSYSTEM": "1", "PYTHONDONTWRITEBYTECODE": "1", **OFFLINE})
        try:
            self.container.start()
            self._set_up()
            self.reset(commit)
        except BaseException:
            self.close()
            raise

    def _set_up(self) -> None:
        setup = self._run("git config --global user.name agent && "
                          "git config --global user.email agent@sandbox && "
                          "git config --global init.defaultBranch main && "
                          "git config --global --add safe.directory /work/repo", 30,
                          workdir="/work")
        if setup.exit_code != 0:
            raise SandboxError(f"sandbox set-up failed: {setup.stderr.strip()}")

    def _run(self, command: str, timeout: float, workdir: str = WORKDIR,
             stdin_data: bytes | None = None, output_cap: int | None = None) -> ExecResult:
        started = time.perf_counter()
        api = self.engine.api
        seconds = str(max(1, int(timeout + 0.999)))
        if stdin_data is None:
            # timeout leads its own process group; once it returns, whatever the command left
            # running in that group (background jobs, a fork bomb) is killed too.
            wrapped = ["bash", "-c", 'timeout -s KILL "$0" bash -c "$1" & t=$!; wait $t; '
                       'rc=$?; kill -KILL -- -$t 2>/dev/null; exit $rc', seconds, command]
        else:
            wrapped = ["timeout", "-s", "KILL", seconds, "bash", "-c", command]
        try:
            exec_id = api.exec_create(self.container.id, wrapped, workdir=workdir,
                                      user="1000:1000", stdin=stdin_data is not None)["Id"]
            if stdin_data is not None:
                socket = api.exec_start(exec_id, socket=True)
                raw = getattr(socket, "_sock", socket)
                raw.sendall(stdin_data)
                raw.shutdown(1)
                stream = _demux_socket(raw)
            else:
                stream = api.exec_start(exec_id, stream=True, demux=True)
            cap = self.limits.output_cap if output_cap is None else output_cap
            out, err = CappedBuffer(cap), CappedBuffer(cap)
            for stdout, stderr in stream:
                if stdout:
                    out.feed(stdout)
                if stderr:
                    err.feed(stderr)
            code = api.exec_inspect(exec_id)["ExitCode"]
        except (APIError, NotFound) as exc:
            raise SandboxError(f"the sandbox container failed: {exc}") from exc
        duration = time.perf_counter() - started
        timed_out = code in (124, 137) and duration >= timeout - 0.05
        return ExecResult(int(code if code is not None else -1), out.text(), err.text(),
                          duration, timed_out, out.truncated, err.truncated)

    def exec(self, command: str, timeout: float = 60.0, stdin: bytes | None = None,
             output_cap: int | None = None) -> ExecResult:
        return self._run(command, timeout, stdin_data=stdin, output_cap=output_cap)

    def end_processes(self) -> int:
        """End every process of the agent's user; how many there were.

        Runs as that user with no shell around it: ``kill(-1)`` spares the caller and the
        container's init, and the keeper process belongs to another user.
        """
        try:
            exec_id = self.engine.api.exec_create(
                self.container.id, ["python3", "-I", "-c", END_PROCESSES], workdir="/",
                user="1000:1000")["Id"]
            output = self.engine.api.exec_start(exec_id).decode("utf-8", "replace")
            code = self.engine.api.exec_inspect(exec_id)["ExitCode"]
        except (APIError, NotFound) as exc:
            raise SandboxError(f"the sandbox container failed: {exc}") from exc
        if code != 0 or not output.strip().isdigit():
            raise SandboxError(f"could not end the agent's processes: {output.strip()[-300:]}")
        return int(output.strip())

    def _path(self, path: str) -> str:
        target = posixpath.normpath(posixpath.join(WORKDIR, path))
        if target != WORKDIR and not target.startswith(WORKDIR + "/"):
            raise PathOutsideWorkTree(f"{path!r} is outside the work tree")
        return target

    def read_file(self, path: str) -> str:
        target = self._path(path)
        result = self._run(f"test -f {shlex.quote(target)} && "
                           f"test \"$(realpath {shlex.quote(target)})\" = "
                           f"\"$(realpath -m {shlex.quote(target)})\" && cat {shlex.quote(target)}",
                           30)
        if result.exit_code != 0:
            raise SandboxError(f"no such file: {path}")
        return result.stdout

    def write_file(self, path: str, content: str) -> None:
        target = self._path(path)
        result = self._run(f"mkdir -p {shlex.quote(posixpath.dirname(target))} && "
                           f"cat > {shlex.quote(target)}", 30, stdin_data=content.encode())
        if result.exit_code != 0:
            raise SandboxError(f"cannot write {path}: {result.stderr.strip()}")

    def list_dir(self, path: str = ".") -> list[str]:
        target = self._path(path)
        result = self._run(f"cd {shlex.quote(target)} && ls -1Ap | grep -vx '.git/' || true", 30)
        if result.exit_code != 0 or result.stderr.strip():
            raise SandboxError(f"no such directory: {path}")
        return sorted(line for line in result.stdout.splitlines() if line)

    def diff(self) -> str:
        result = self._run(f"git add -A && git diff --cached --binary {self._seed}", 120)
        if result.exit_code != 0:
            raise SandboxError(f"git diff failed: {result.stderr.strip()}")
        return result.stdout

    def apply_patch(self, patch: str, reverse: bool = False) -> None:
        if not patch.strip():
            return
        flag = "-R " if reverse else ""
        result = self._run(f"git apply --whitespace=nowarn {flag}-", 60,
                           stdin_data=patch.encode("utf-8", "surrogateescape"))
        if result.exit_code != 0:
            raise PatchConflict(f"patch does not apply: {result.stderr.strip()}")

    def reset(self, commit: str) -> None:
        """A fresh repository holding the files of ``commit`` and nothing else."""
        self.end_processes()
        files = tree_archive(self.repo, commit)
        result = self._run(f"rm -rf {WORKDIR} && mkdir {WORKDIR} && tar -xf - -C {WORKDIR} "
                           f"&& cd {WORKDIR} && {SEED}", 300, workdir="/work", stdin_data=files)
        if result.exit_code != 0:
            raise SandboxError(f"cannot set up the work tree at {commit}: "
                               f"{result.stderr.strip()}")
        self._seed = result.stdout.strip().splitlines()[-1]
        self.start_commit = commit

    def close(self) -> None:
        try:
            self.container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            if "already in progress" not in str(exc):
                raise SandboxError(f"could not remove sandbox container: {exc}") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _demux_socket(sock: Any) -> Any:
    """Docker's multiplexed stream frames: 8-byte header (stream, size) then payload."""
    def read_exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return data
            data += chunk
        return data

    while True:
        header = read_exact(8)
        if len(header) < 8:
            return
        size = int.from_bytes(header[4:8], "big")
        payload = read_exact(size)
        yield (payload, None) if header[0] == 1 else (None, payload)


def labels(**extra: str) -> dict[str, str]:
    """The labels of every container this process makes: what it is, when, and whose."""
    return {LABEL: "1", "davinci.created": str(int(time.time())),
            OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}", **extra}


@dataclass(frozen=True)
class Collected:
    removed: list[str]
    kept: int
    """Sandboxes left because the process that made them is alive (or on another host)."""


def gc(engine: docker.DockerClient | None = None, older_than: float = 0.0,
       everything: bool = False) -> Collected:
    """Remove the sandbox containers whose process is gone.

    A container made on this host by a live process stays (a worker is using it), and so does
    one made on another host sharing the engine, unless it is older than ``older_than``
    seconds. ``older_than`` also spares younger leftovers; ``everything`` removes them all.
    """
    engine = engine or client()
    removed, kept = [], 0
    now, host = time.time(), socket.gethostname()
    for container in engine.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        created = float(container.labels.get("davinci.created", "0") or 0)
        if older_than and now - created < older_than:
            continue
        if not everything and _in_use(container.labels.get(OWNER_LABEL, ""), host,
                                      aged=bool(older_than)):
            kept += 1
            continue
        try:
            container.remove(force=True)
            removed.append(container.short_id)
        except (NotFound, APIError):
            continue
    return Collected(removed, kept)


def _in_use(owner: str, host: str, aged: bool) -> bool:
    """Whether the process named by an owner label may still use its container."""
    owner_host, _, pid = owner.rpartition(":")
    if not owner_host or not pid.isdigit() or int(pid) <= 0:
        return False  # unlabelled (made by an older version) or unreadable: an orphan
    if owner_host != host:
        return not aged  # no way to look at another host's processes; trust age only
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
