"""`davinci corpus export|stats|show`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from bot.runtime import Runtime
from corpus.export import (
    ARGUMENTS,
    COMPRESSIONS,
    DEFAULT_SHARD_BYTES,
    FORMATS,
    POLICIES,
    ExportError,
    export,
)
from corpus.stats import corpus_stats
from corpus.store import TrajectoryRow
from rollout.store import RolloutRow

STAGE_START = re.compile(r"^Request \d+ of \d+:", re.M)


@click.group("corpus")
def corpus_group() -> None:
    """The corpus of verified trajectories."""


@corpus_group.command("export")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Directory for the JSONL shards and manifests.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="openai",
              show_default=True,
              help="openai: {messages, tools}; sharegpt: {conversations, tools} (both pass "
                   "LLaMA-Factory's loaders: roles alternate, the record ends on the model); "
                   "hf: Parquet shards and a dataset card for datasets.load_dataset(DIR).")
@click.option("--policy", type=click.Choice(POLICIES), default="all", show_default=True,
              help="llm: a model's work; replay: the human commits replayed.")
@click.option("--arguments", type=click.Choice(ARGUMENTS), default="string",
              show_default=True,
              help="openai format: tool-call arguments as JSON text (OpenAI's API) or as "
                   "objects (chat templates that iterate them).")
@click.option("--test-after", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              default=None,
              help="Trajectories whose PRs all merged after this date go to separate `test` "
                   "shards: a fresh evaluation split no model trained before it has seen.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="none",
              show_default=True,
              help="hf format: how Parquet pages are compressed. zstd makes shards about half "
                   "as big; none exports about twice as fast.")
@click.option("--since", default=None, help="Only records appended after this record id.")
@click.option("--shard-mb", type=click.IntRange(min=1), default=DEFAULT_SHARD_BYTES // 2**20,
              show_default=True, help="Largest shard size in MiB.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def export_command(runtime: Runtime, out: Path, fmt: str, policy: str, arguments: str,
                   test_after: datetime | None, compression: str, since: str | None,
                   shard_mb: int, as_json: bool) -> None:
    """Write the corpus as JSONL shards with a manifest; running it again into the same
    directory writes only the records that are new since the last export. Every record is
    checked against its loader's rules first; a failed export changes nothing."""
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"--out {out} is a file: give a directory (made when "
                                   "missing)")
    try:
        with runtime.db.session() as session:
            result = export(session, out, fmt, since, shard_mb * 2**20, arguments, policy,
                            test_after.replace(tzinfo=UTC) if test_after else None,
                            compression)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    document = {"records": result.records,
                "manifest": str(result.manifest) if result.manifest else None,
                "shards": [str(p) for p in result.shards]}
    if as_json:
        click.echo(json.dumps(document))
    elif result.manifest is not None:
        click.echo(f"exported {result.records} trajectories to {out} "
                   f"({len(result.shards)} shard(s), manifest {result.manifest.name})")
    else:
        click.echo(f"nothing new to export into {out}")


@corpus_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def stats_command(runtime: Runtime, as_json: bool) -> None:
    """Records, acceptance rate, tokens and tool calls per trajectory, per repository and
    per policy."""
    with runtime.db.session() as session:
        stats = corpus_stats(session)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    click.echo(f"records: {stats['records']} (rejected rollouts: {stats['rejected']}, "
               f"acceptance rate {stats['acceptance_rate']:.0%})")
    click.echo(f"tokens per trajectory (its length): mean {stats['mean_tokens']:,.0f}, "
               f"median {stats['median_tokens']:,.0f}; billed by the model server: "
               f"{stats['tokens_billed']:,} in all, mean {stats['mean_tokens_billed']:,.0f}")
    click.echo(f"tool calls per trajectory: mean {stats['mean_tool_calls']:.1f}, "
               f"median {stats['median_tool_calls']:.0f}; stages: mean {stats['mean_stages']:.1f}")
    for title, key in (("per repository", "per_repository"), ("per policy", "per_policy"),
                       ("per chain length (stages)", "per_chain_length")):
        if stats[key]:
            click.echo(f"{title}:")
            for name, figures in stats[key].items():
                click.echo(f"  {name}: {figures['records']} records "
                           f"(acceptance {figures['acceptance_rate']:.0%}), mean "
                           f"{figures['mean_tokens']:,.0f} tokens, "
                           f"{figures['mean_tool_calls']:.1f} tool calls")


@corpus_group.command("show")
@click.argument("record_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.option("--audit", "as_audit", is_flag=True,
              help="Print, as JSON, everything the verifier saw and why it decided.")
@click.pass_obj
def show_command(runtime: Runtime, record_id: str, as_json: bool, as_audit: bool) -> None:
    """Print one trajectory readably (an id or a unique prefix of one), with how each stage
    was verified."""
    with runtime.db.session() as session:
        rows = session.scalars(select(TrajectoryRow).where(
            TrajectoryRow.id.startswith(record_id)).limit(2)).all()
        if len(rows) != 1:
            raise click.ClickException(f"no single record matches {record_id!r}")
        record = rows[0].record()
        rollout = session.scalars(select(RolloutRow).where(
            RolloutRow.record_id == record["id"]).order_by(RolloutRow.id.desc())).first()
        trail = rollout.audit if rollout is not None else {}
    if as_audit:
        click.echo(json.dumps(trail, indent=2))
        return
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    checks = {stage["pr"]: stage["checks"][-1] for stage in trail.get("stages", [])
              if stage.get("checks")}
    click.echo(f"trajectory {record['id'][:16]}  {record['repository']}  chain "
               f"{' → '.join(f'#{n}' for n in record['chain']['prs'])}")
    click.echo(f"policy {record['policy']}  score {record['score']:.2f}  "
               f"{record['tool_calls']} tool calls  {record['tokens']:,} tokens")
    stages = iter(record["stages"])
    for message in record["messages"]:
        role = message["role"]
        content = (message.get("content") or "").strip()
        if role == "user" and STAGE_START.search(content):
            stage = next(stages, None)
            if stage:
                click.echo(f"\n=== stage: PR #{stage['pr']} — {stage['verdict']} "
                           f"(score {stage['score']:.2f}, {stage['attempts']} attempt(s))")
                if stage["pr"] in checks:
                    click.echo(f"verified: {verification(checks[stage['pr']])}")
        if role == "assistant":
            if content:
                click.echo(f"assistant: {_short(content)}")
            for call in message.get("tool_calls") or []:
                function = call["function"]
                click.echo(f"  → {function['name']}({_short(function['arguments'])})")
        elif role == "tool":
            click.echo(f"  ← {_short(content)}")
        else:
            click.echo(f"{role}: {_short(content, 300)}")


def verification(check: dict[str, Any]) -> str:
    """One line on how an attempt was checked, from its audit entry."""
    outcomes = check.get("outcomes") or {}
    passed = sum(1 for outcome in outcomes.values() if outcome == "passed")
    parts = [f"hidden tests {passed}/{len(outcomes)} passed"]
    integrity = check.get("integrity") or {}
    if integrity:
        parts.append(f"{integrity.get('processes_ended', 0)} agent process(es) ended")
        parts.append(f"{len(integrity.get('set_aside', []))} file(s) of the agent set aside, "
                     f"{len(integrity.get('restored', []))} restored from the reference")
        parts.append("runner isolated" if integrity.get("isolated") else "runner NOT isolated")
    if check.get("tampering"):
        parts.append(check["tampering"])
    if check.get("judge_parsed") is not None:
        parts.append(f"judge {check.get('judge_score')} "
                     + ("(parsed)" if check["judge_parsed"] else "(unreadable: scored 0)"))
    return "; ".join(parts)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


COMMANDS = [corpus_group]
