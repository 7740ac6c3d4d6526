"""`davinci sandbox build-base|doctor|gc`: operator tools for the Docker sandboxes."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import click

from bot.runtime import Runtime

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "sandbox" / "build-base.sh"


@click.group("sandbox")
def sandbox_group() -> None:
    """Build, check and clean up the Docker sandboxes rollouts run in."""


@sandbox_group.command("build-base")
@click.pass_obj
def build_base(runtime: Runtime) -> None:
    """Build the base image from a Debian root file system (no registry needed)."""
    if not BUILD_SCRIPT.exists():
        raise click.ClickException(f"the image recipe is missing ({BUILD_SCRIPT.name})")
    result = subprocess.run(["bash", str(BUILD_SCRIPT), runtime.settings.sandbox_image])
    if result.returncode != 0:
        raise click.ClickException("building the base image failed (see above)")


@sandbox_group.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def doctor(runtime: Runtime, as_json: bool) -> None:
    """Check that the engine answers, the base image exists and the limits hold."""
    from sandbox.base import SandboxError
    from sandbox.docker import client
    from sandbox.factory import open_sandbox

    checks: list[dict[str, object]] = []

    def check(name: str, ok: bool, detail: str) -> bool:
        checks.append({"check": name, "ok": ok, "detail": detail})
        return ok

    try:
        engine = client()
        check("engine", True, f"Docker {engine.version().get('Version', '?')} answers")
    except SandboxError as exc:
        check("engine", False, str(exc))
        engine = None
    image = runtime.settings.sandbox_image
    if engine is not None:
        try:
            engine.images.get(image)
            check("image", True, f"{image} is present")
        except Exception:  # noqa: BLE001 - reported as a failed check
            check("image", False, f"{image} is missing: run `davinci sandbox build-base`")
    if all(c["ok"] for c in checks):
        with tempfile.TemporaryDirectory() as scratch:
            repo = Path(scratch) / "probe"
            repo.mkdir()
            for args in (["init", "-q"], ["-c", "user.name=d", "-c", "user.email=d@d",
                                          "commit", "-q", "--allow-empty", "-m", "probe"]):
                subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
            with open_sandbox(repo, "HEAD", "docker", image) as box:
                check("user", box.exec("id -u").stdout.strip() != "0", "commands run unprivileged")
                net = box.exec("python3 -c \"import socket; socket.create_connection(("
                               "'1.1.1.1', 53), timeout=2)\"", timeout=15)
                check("network", net.exit_code != 0, "no network inside the sandbox")
                ro = box.exec("touch /probe")
                check("read-only root", ro.exit_code != 0, "the root file system is read-only")
                slow = box.exec("sleep 10", timeout=1)
                check("timeout", slow.timed_out, f"a command is killed at its timeout "
                      f"({slow.duration:.1f}s)")
    if as_json:
        click.echo(json.dumps({"ok": all(c["ok"] for c in checks), "checks": checks}))
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c['ok'] else 'FAIL'}  {c['check']}: {c['detail']}")
    if not all(c["ok"] for c in checks):
        raise SystemExit(1)


@sandbox_group.command("gc")
@click.option("--older-than", type=float, default=0.0, show_default=True,
              help="Only sandboxes older than this many seconds.")
def gc(older_than: float) -> None:
    """Remove sandbox containers left behind by a crashed process."""
    from sandbox.docker import gc as remove

    removed = remove(older_than=older_than)
    click.echo(f"removed {len(removed)} sandbox container(s)")


COMMANDS = [sandbox_group]
