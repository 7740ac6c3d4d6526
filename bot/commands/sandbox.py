"""`davinci sandbox build-base|env|doctor|gc`: operator tools for the Docker sandboxes."""

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
@click.option("--python", "python", default=None, metavar="X.Y",
              help="Build the base image for this Python (3.9, 3.11 or 3.13) from the Debian "
                   "suite that ships it, tagged pyX.Y; rollouts then choose among the built "
                   "versions per repository state. Default: the default image.")
@click.pass_obj
def build_base(runtime: Runtime, python: str | None) -> None:
    """Build a base image from a Debian root file system (needs root; no registry).

    The root file system is cached, so a rebuild needs no network.
    """
    import os

    from sandbox.base import SandboxError
    from sandbox.interpreters import image_for, suite_for

    if not BUILD_SCRIPT.exists():
        raise click.ClickException(f"the image recipe is missing ({BUILD_SCRIPT.name})")
    image, variables = runtime.settings.sandbox_image, dict(os.environ)
    if python is not None:
        try:
            variables["DEBIAN_SUITE"] = suite_for(python)
        except SandboxError as exc:
            raise click.BadParameter(str(exc), param_hint="--python") from exc
        image = image_for(image, python)
    result = subprocess.run(["bash", str(BUILD_SCRIPT), image], env=variables)
    if result.returncode != 0:
        raise click.ClickException(f"building {image} failed (see above)")


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
    if engine is not None and checks[-1]["ok"]:
        from sandbox.packages import build_network

        access = runtime.settings.package_access()
        chosen = build_network(engine, image, access, runtime.settings.build_network)
        mounted = ", ".join(access.mounts) or "nothing"
        check("builds", chosen.reachable,
              f"environment builds run on network {chosen.network!r} ({chosen.detail}); "
              f"mounted read-only: {mounted}")
    if engine is not None and checks[-1]["ok"]:
        from sandbox.interpreters import base_images

        pythons = base_images(engine, image)
        check("pythons", True, "base images: " + (", ".join(
            f"{version} ({tag})" for version, tag in sorted(pythons.items())) or
            "none says its Python (rebuild with `davinci sandbox build-base`)"))
    if engine is not None:
        from sandbox.environment import environment_images

        images = environment_images(engine)
        check("environments", True, f"{len(images)} environment image(s): "
              + (", ".join(i["image"] for i in images[:5]) or "none yet"))
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


@sandbox_group.command("env")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--commit", default="HEAD", show_default=True, help="Dependency state to build.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--log", "show_log", is_flag=True,
              help="Then print the output of the build that made the image (a failed build's "
                   "whole output is in the file its error names).")
@click.pass_obj
def env(runtime: Runtime, path: Path, commit: str, as_json: bool, show_log: bool) -> None:
    """Build (or find) the environment image of the git repository at PATH.

    The install command is `install` in the repository's `.github/davinci.yml`, else one
    detected from its dependency files; the build has network, sandboxes never do.
    """
    from chains.config import config_at
    from sandbox.base import SandboxError
    from sandbox.environment import build_log, ensure_environment

    parsed = config_at(path, commit)
    if parsed.problem:
        click.echo(f"warning: {parsed.problem}; defaults apply", err=True)
    if not as_json:
        click.echo(f"environment of {path.name} at {commit}: looking for a cached image…",
                   err=True)
    try:
        found = ensure_environment(path, commit, parsed.config.install,
                                   runtime.settings.sandbox_image,
                                   network=runtime.settings.build_network,
                                   access=runtime.settings.package_access(),
                                   python=runtime.settings.python,
                                   as_of=runtime.settings.packages_as_of == "commit",
                                   on_build=None if as_json else
                                   lambda progress: click.echo(progress.describe(), err=True))
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from exc
    python = found.python
    document = {"image": found.image, "key": found.key, "install": found.install,
                "built": found.built, "seconds": round(found.seconds, 1),
                "python": python.version if python else "",
                "python_reason": python.reason if python else ""}
    log = build_log(found.image) if show_log and found.install is not None else None
    if as_json:
        click.echo(json.dumps({**document, "log": log} if show_log else document))
        return
    if python is not None:
        click.echo(python.describe())
    if found.install is None:
        click.echo(f"nothing to install: sandboxes run from {found.image}")
    else:
        how = f"built in {found.seconds:.1f}s" if found.built else "reused"
        click.echo(f"{found.image} ({how}); install: {found.install}")
    if show_log:
        click.echo(log if log is not None else
                   f"{found.image} keeps no build log (it was built before logs were kept, or "
                   "is a base image)")


@sandbox_group.command("gc")
@click.option("--older-than", type=float, default=0.0, show_default=True,
              help="Only sandboxes older than this many seconds (then also those made on "
                   "other hosts sharing the engine).")
@click.option("--all", "everything", is_flag=True,
              help="Also sandboxes of live processes: rollouts running now fail.")
@click.option("--environments-older-than", "env_days", type=float, default=None,
              help="Also remove environment images built more than this many days ago "
                   "(they are rebuilt when next needed).")
def gc(older_than: float, everything: bool, env_days: float | None) -> None:
    """Remove sandbox containers left behind by a crashed process (and old environments).

    Each container names the host and process that made it; while that process lives (a
    worker running a rollout), its container stays.
    """
    from sandbox.docker import gc as remove
    from sandbox.environment import remove_environments

    collected = remove(older_than=older_than, everything=everything)
    click.echo(f"removed {len(collected.removed)} sandbox container(s)"
               + (f"; kept {collected.kept} in use by live processes" if collected.kept else ""))
    if env_days is not None:
        images = remove_environments(older_than_days=env_days)
        click.echo(f"removed {len(images)} environment image(s)"
                   + (f": {', '.join(images)}" if images else ""))


COMMANDS = [sandbox_group]
