"""Appending, gating, exporting and counting trajectories, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from sqlalchemy import func, select

from bot.db import Database
from corpus import formats
from corpus.export import export
from corpus.record import ExcludedRepository, InvalidRecord, record_id
from corpus.stats import corpus_stats
from corpus.store import TrajectoryRow, append, record_rejection
from tests.corpus.records import make_record


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(TrajectoryRow)) or 0)


def test_append_is_idempotent_and_rejections_count(database: Database) -> None:
    record = make_record(1)
    with database.session() as session:
        first = append(session, record)
    with database.session() as session:
        again = append(session, copy.deepcopy(record))
        append(session, {**make_record(2), "created_at": "2026-11-25T00:00:00+00:00"})
        record_rejection(session, make_record(3), "stage 2 failed after 3 attempts")
        record_rejection(session, make_record(3), "stage 2 failed after 3 attempts")
    assert first.stored and not again.stored and first.id == again.id
    assert first.id == record_id({k: v for k, v in record.items() if k != "created_at"})
    assert count(database) == 2
    with database.session() as session:
        stats = corpus_stats(session)
    assert stats["records"] == 2 and stats["rejected"] == 1
    assert stats["acceptance_rate"] == round(2 / 3, 4)
    assert stats["mean_tool_calls"] == 6 and stats["per_policy"]["replay"]["records"] == 2
    assert stats["per_policy"]["replay"]["acceptance_rate"] == round(2 / 3, 4)
    assert stats["per_chain_length"]["2"]["records"] == 2


@pytest.mark.parametrize("breakage,message", [
    (lambda r: r["messages"].insert(2, {"role": "assistant", "content": "twice"}),
     "must follow a user or tool"),
    (lambda r: r["messages"].pop(3), "have no result"),
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments="{not json"),
     "not a JSON object"),
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments="[1]"),
     "not a JSON object"),
    (lambda r: r["messages"][3].update(tool_call_id="call_x"), "unknown tool call"),
    (lambda r: r.pop("tools"), "`tools` is missing"),
    (lambda r: r["chain"].update(prs=["1"]), "chain.prs"),
])
def test_malformed_records_are_refused_with_the_reason(sqlite_db: Database, breakage: object,
                                                       message: str) -> None:
    record = make_record(5)
    breakage(record)  # type: ignore[operator]
    with pytest.raises(InvalidRecord, match=message), sqlite_db.session() as session:
        append(session, record)
    assert count(sqlite_db) == 0


def test_an_empty_turn_is_dropped_not_refused(sqlite_db: Database) -> None:
    record = make_record(5)
    record["messages"] += [{"role": "user", "content": "more"},
                           {"role": "assistant", "content": "  "},
                           {"role": "user", "content": "Your reply was empty."},
                           {"role": "assistant", "content": "Done."}]
    with sqlite_db.session() as session:
        appended = append(session, record)
        stored = session.get(TrajectoryRow, appended.id).record()
    assert appended.stored and len(stored["messages"]) == len(record["messages"]) - 1
    assert all((m.get("content") or "").strip() or m.get("tool_calls")
               for m in stored["messages"] if m["role"] == "assistant")


def test_secrets_are_redacted_before_storing(sqlite_db: Database) -> None:
    record = make_record(6)
    token = "ghp_" + "A1b2" * 10
    record["messages"][3]["content"] = f"export GITHUB_TOKEN={token}\nAKIAABCDEFGHIJKLMNOP"
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = json.dumps(
        {"arg": "curl -H 'Authorization: Bearer sk-proj-abcdefghijklmnopqrstuvwxyz123456'"})
    with sqlite_db.session() as session:
        appended = append(session, record)
    with sqlite_db.session() as session:
        row = session.get(TrajectoryRow, appended.id)
        assert row is not None
        stored = json.dumps(row.record())
        assert token not in stored and "AKIAABCDEFGHIJKLMNOP" not in stored
        assert "sk-proj" not in stored and "[redacted secret]" in stored


def test_excluded_repositories_are_refused(sqlite_db: Database) -> None:
    with pytest.raises(ExcludedRepository, match="exclusion list"), \
            sqlite_db.session() as session:
        append(session, make_record(7, repository="princeton-nlp/SWE-bench"),
               excluded=["princeton-nlp/*"])
    assert count(sqlite_db) == 0


def _append_many(url: str, seeds: list[int]) -> None:
    db = Database(url)
    for seed in seeds:
        with db.session() as session:
            append(session, make_record(seed))
    db.dispose()


def test_concurrent_appends_from_processes_lose_and_duplicate_nothing(
        database: Database) -> None:
    shared = list(range(100, 120))
    workers = [shared + list(range(200 + 10 * w, 205 + 10 * w)) for w in range(4)]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append_many, args=(database.url, seeds))
                 for seeds in workers]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    assert count(database) == 20 + 4 * 5


def read_shards(out: Path, manifest: dict[str, object]) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for shard in manifest["shards"]:  # type: ignore[attr-defined]
        data = (out / shard["file"]).read_bytes()
        assert blake3.blake3(data).hexdigest() == shard["blake3"]
        assert len(data) == shard["bytes"]
        lines += [json.loads(line) for line in data.splitlines()]
    return lines


def test_export_and_reexport_round_trip_every_record(database: Database,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "export"
    with database.session() as session:
        for seed in range(30):
            append(session, make_record(seed, tool_calls=6 + seed % 3 * 30,
                                        observation_chars=2000 + seed * 500))
    with database.session() as session:  # shards of several hashing batches each
        first = export(session, out, "openai", shard_bytes=3_000_000)
    assert first.records == 30 and len(first.shards) > 1 and first.manifest is not None
    manifest1 = json.loads(first.manifest.read_text())
    assert manifest1["version"] == 1 and manifest1["previous"] is None
    with database.session() as session:
        for seed in range(30, 37):
            append(session, make_record(seed))
        record_rejection(session, make_record(99), "rejected")
    with database.session() as session:
        second = export(session, out, "openai", shard_bytes=40_000)
        nothing = export(session, out, "openai")
    assert second.records == 7 and nothing.records == 0 and second.manifest is not None
    manifest2 = json.loads(second.manifest.read_text())
    assert manifest2["previous"] == first.manifest.name
    assert manifest2["previous_sha256"] == hashlib.sha256(first.manifest.read_bytes()).hexdigest()
    exported = read_shards(out, manifest1) + read_shards(out, manifest2)
    with database.session() as session:
        stored = [formats.openai(row.record()) for row in session.scalars(select(TrajectoryRow))]
    expected = sorted((json.dumps(r["messages"], sort_keys=True), json.dumps(r["tools"]))
                      for r in stored)
    got = sorted((json.dumps(r["messages"], sort_keys=True), json.dumps(r["tools"]))
                 for r in exported)
    assert got == expected and len(got) == 37


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_exported_files_load_with_the_datasets_library(sqlite_db: Database, tmp_path: Path,
                                                       fmt: str) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is a dev dependency")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with sqlite_db.session() as session:
        for seed in range(5):
            append(session, make_record(seed))
        result = export(session, tmp_path / fmt, fmt)
    loaded = datasets.load_dataset("json", data_files=[str(p) for p in result.shards],
                                   split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert loaded.num_rows == 5
    if fmt == "openai":
        first = loaded[0]["messages"]
        assert first[0]["role"] == "system"
        assert json.loads(first[2]["tool_calls"][0]["function"]["arguments"])["arg"]
    else:
        roles = {turn["from"] for turn in loaded[0]["conversations"]}
        assert roles == {"system", "human", "gpt", "function_call", "observation"}


def test_cli_stats_and_show(tmp_path: Path) -> None:
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    db = Database(f"sqlite:///{tmp_path / 'davinci.db'}")
    db.create_schema()
    with db.session() as session:
        appended = append(session, make_record(11))
    stats = subprocess.run([sys.executable, "-m", "bot", "corpus", "stats", "--json"],
                           capture_output=True, text=True, env=env, check=True)
    document = json.loads(stats.stdout)
    assert {"records", "acceptance_rate", "mean_tokens", "mean_tool_calls"} <= set(document)
    assert document["records"] == 1
    shown = subprocess.run([sys.executable, "-m", "bot", "corpus", "show", appended.id[:10]],
                           capture_output=True, text=True, env=env, check=True)
    assert "=== stage: PR #1" in shown.stdout and "=== stage: PR #2" in shown.stdout
    assert "→ " in shown.stdout and "← " in shown.stdout
