"""Hostile code against real sandboxes. The local backend runs what its isolation allows."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading

import docker
import pytest

from bot.sample import SampleRepository
from sandbox.base import Sandbox
from sandbox.docker import LABEL
from sandbox.factory import open_sandbox


def test_an_infinite_loop_is_killed_at_the_timeout(box: Sandbox) -> None:
    result = box.exec("sh -c 'while :; do :; done' & while :; do :; done", timeout=2)
    assert result.timed_out and 1.5 < result.duration < 10
    assert box.exec("echo alive", timeout=10).stdout.strip() == "alive"
    leftovers = box.exec("ps -eo args | grep -c '^sh -c while' || true", timeout=10)
    assert leftovers.stdout.strip() == "0"


def test_a_memory_hog_is_stopped_without_harming_the_host(box: Sandbox) -> None:
    result = box.exec("python3 -c \"x = bytearray(6 * 1024**3); print('allocated')\"",
                      timeout=60)
    assert result.exit_code != 0 and "allocated" not in result.stdout
    assert box.exec("echo still here").stdout.strip() == "still here"


def test_a_huge_stdout_is_truncated_without_exhausting_memory(box: Sandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = box.exec("head -c 1000000000 /dev/zero | tr '\\0' x", timeout=300)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.stdout_truncated and "1000000000" not in result.stdout
    assert result.stdout.startswith("xxxx") and len(result.stdout) < 400_000
    assert grown_kib < 200 * 1024, f"our process grew by {grown_kib} KiB"


def test_a_fork_bomb_is_contained_by_the_pids_limit(docker_box: Sandbox) -> None:
    result = docker_box.exec("bomb() { bomb | bomb & }; bomb; sleep 5", timeout=8)
    assert "Resource temporarily unavailable" in result.stderr
    container = docker_box.container  # type: ignore[attr-defined]
    container.reload()
    assert container.attrs["HostConfig"]["PidsLimit"] == 256
    assert docker_box.exec("echo survived", timeout=20).stdout.strip() == "survived"


def test_no_network_while_the_agent_works(docker_box: Sandbox) -> None:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def listen() -> None:
        with contextlib.suppress(OSError):  # closed when the probe is over
            accepted.append(server.accept())
    threading.Thread(target=listen, daemon=True).start()
    try:
        script = ("import socket\n"
                  "for host in ('172.17.0.1', '127.0.0.1', '10.0.0.1'):\n"
                  "    try:\n"
                  f"        socket.create_connection((host, {port}), timeout=2)\n"
                  "        print('connected', host)\n"
                  "    except OSError as e:\n"
                  "        print('refused', host, type(e).__name__)\n")
        docker_box.write_file("probe.py", script)
        result = docker_box.exec("python3 probe.py", timeout=30)
    finally:
        server.close()
    assert "connected" not in result.stdout and result.stdout.count("refused") == 3
    assert accepted == []
    assert docker_box.exec("cat /sys/class/net/*/operstate 2>/dev/null | sort -u").stdout \
        .strip() in ("unknown", "")


def test_writing_outside_the_work_tree_fails(docker_box: Sandbox) -> None:
    for target in ("/etc/evil", "/usr/local/bin/evil", "/evil"):
        result = docker_box.exec(f"echo x > {target}")
        assert result.exit_code != 0 and "Read-only file system" in result.stderr + \
            result.stdout or "Permission denied" in result.stderr
    assert docker_box.exec("echo x > /tmp/ok && cat /tmp/ok").stdout.strip() == "x"
    assert docker_box.exec("id -u").stdout.strip() == "1000"


def test_the_container_is_gone_after_close_even_after_a_crash(sample: SampleRepository,
                                                              docker_ready: bool) -> None:
    if not docker_ready:
        pytest.skip("no Docker engine answers here (CI always has one)")
    engine = docker.from_env()
    with pytest.raises(RuntimeError, match="the agent blew up"), \
            open_sandbox(sample.path, sample.merge_commits[1], "docker") as box:
        container_id = box.container.id  # type: ignore[attr-defined]
        box.exec("python3 -c 'import os; os.abort()'")
        raise RuntimeError("the agent blew up")
    remaining = [c.id for c in engine.containers.list(all=True, filters={"label": f"{LABEL}=1"})]
    assert container_id not in remaining


def test_two_sandboxes_do_not_see_each_others_files(backend: str,
                                                    sample: SampleRepository) -> None:
    with open_sandbox(sample.path, sample.merge_commits[1], backend) as first, \
            open_sandbox(sample.path, sample.merge_commits[1], backend) as second:
        first.write_file("secret.txt", "only mine")
        assert "secret.txt" not in second.list_dir(".")
        found = second.exec("find / -name secret.txt 2>/dev/null | head -5", timeout=60)
        if backend == "docker":
            assert found.stdout.strip() == ""


def test_what_the_local_backend_does_not_isolate() -> None:
    """Plainly: the local backend shares this machine's network, file system (outside the
    work tree, as this user), process table and process count. Use Docker for untrusted code;
    the App refuses the local backend unless DAVINCI_SANDBOX=local says so."""
    from sandbox.base import SandboxUnavailable
    from sandbox.factory import choose_backend

    assert choose_backend("local") == "local"
    try:
        chosen = choose_backend(None)
    except SandboxUnavailable as exc:
        assert "DAVINCI_SANDBOX=local" in str(exc)
    else:
        assert chosen == "docker"


def test_pip_in_a_sandbox_gives_up_on_the_network_at_once(docker_box: Sandbox) -> None:
    """No network: pip fails a lookup without retrying it (five retries with back-off cost
    about 25 s a package, and a suite whose tests call pip ran past the test timeout)."""
    result = docker_box.exec("python3 -m pip download --no-deps -d /tmp/wheels six", timeout=120)
    output = result.stdout + result.stderr
    assert result.exit_code != 0 and "six" in output
    assert "Retrying" not in output, output[-2000:]
