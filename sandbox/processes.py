"""Ending every process an agent started, so nothing it left running outlives its turn.

Before the hidden tests run, a detached loop that rewrites test files, a daemon waiting to
overwrite a report, or a server the agent forgot must all be gone. In a container that is
every process of the agent's user (:data:`END_PROCESSES`, run there by that user: ``kill(-1)``
reaches all of them and spares the caller and init). On the local backend processes are
found by the marker each sandbox puts in the environment of its commands (:func:`end_marked`),
which is as far as that backend's weak isolation goes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

MARKER = "DAVINCI_SANDBOX"
ROUNDS = 200

END_PROCESSES = r"""
import os, time
def alive():
    me, uid, found = os.getpid(), str(os.getuid()), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").split()[:1] == ["Z"]:
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            found.append(int(name))
    return found
seen = set()
for _ in range(ROUNDS):
    pids = alive()
    if not pids:
        print(len(seen))
        raise SystemExit(0)
    seen.update(pids)
    try:
        os.kill(-1, 9)
    except ProcessLookupError:
        pass
    time.sleep(0.01)
print("processes kept coming back")
raise SystemExit(3)
""".replace("ROUNDS", str(ROUNDS))


def end_marked(value: str) -> int:
    """Kill this user's processes whose environment carries ``MARKER=value``; how many."""
    needle = f"\0{MARKER}={value}\0".encode()
    seen: set[int] = set()
    for _ in range(ROUNDS):
        pids = [pid for pid in _own_processes() if needle in _environ(pid)]
        if not pids:
            break
        seen.update(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return len(seen)


def _own_processes() -> list[int]:
    me, uid = os.getpid(), os.getuid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid or _zombie(int(name)):
                continue
        except OSError:
            continue
        found.append(int(name))
    return found


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return b"\0" + environ.read()
    except OSError:
        return b""
