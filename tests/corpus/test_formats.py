"""Exports shaped for the loaders trainers use, checked by their rules, written atomically."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import orjson
import pyarrow as pa
import pytest
from sqlalchemy import insert, select

import corpus.export
from bot.db import Database
from corpus import formats, hf
from corpus.export import ExportError, export
from corpus.store import ExportLineRow, TrajectoryRow, append
from tests.corpus.records import TOOLS, make_record


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


ROLLOUT = [
    {"role": "system", "content": "You are a software engineer."},
    {"role": "user", "content": "Objective: tidy slugs.\n\nRequest 1 of 2:\nCut long slugs."},
    {"role": "assistant", "content": "Looking at both modules.",
     "tool_calls": [call("a", "read_file", arg="slug.py"), call("b", "read_file", arg="t.py")]},
    {"role": "tool", "tool_call_id": "a", "content": "def slugify(title): ..."},
    {"role": "tool", "tool_call_id": "b", "content": "def test_slug(): ..."},
    {"role": "user", "content": "Attempt 1 did not pass the hidden tests."},
    {"role": "assistant", "content": None, "tool_calls": [call("c", "submit")]},
    {"role": "tool", "tool_call_id": "c", "content": "Submitted for verification."},
    {"role": "user", "content": "Request 2 of 2:\nFix the trailing dash."},
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "No tool was called."},
    {"role": "assistant", "content": None, "tool_calls": [call("d", "submit")]},
    {"role": "tool", "tool_call_id": "d", "content": "Submitted for verification."},
]


def test_a_rollout_becomes_alternating_sharegpt_without_losing_words() -> None:
    example = formats.sharegpt({"messages": ROLLOUT, "tools": TOOLS})
    formats.check_sharegpt(example)
    turns = example["conversations"]
    assert [t["from"] for t in turns] == ["system", "human", "function_call", "observation",
                                          "function_call", "observation", "gpt", "human",
                                          "function_call"]
    first_calls = turns[2]["value"]
    assert first_calls.startswith("<think>\nLooking at both modules.\n</think>\n\n")
    parsed = json.loads(first_calls.split("</think>\n\n", 1)[1])
    assert parsed == [{"name": "read_file", "arguments": {"arg": "slug.py"}},
                      {"name": "read_file", "arguments": {"arg": "t.py"}}]
    observation = turns[3]["value"]
    assert "def slugify" in observation and "def test_slug" in observation
    assert observation.endswith("Attempt 1 did not pass the hidden tests.")
    assert "Submitted for verification.\n\nRequest 2 of 2" in turns[5]["value"]
    assert json.loads(example["tools"])[0]["name"] == "bash"


def test_openai_records_alternate_and_can_carry_object_arguments() -> None:
    example = formats.openai({"messages": ROLLOUT, "tools": TOOLS}, arguments="object")
    formats.check_openai(example)
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant",
                     "user", "assistant"]
    assert example["messages"][2]["tool_calls"][1]["function"]["arguments"] == {"arg": "t.py"}
    as_text = formats.openai({"messages": ROLLOUT, "tools": TOOLS})
    assert as_text["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"arg": "slug.py"}'


@pytest.mark.parametrize(("example", "words"), [
    ({"conversations": [{"from": "human", "value": "a"}, {"from": "observation", "value": "b"}]},
     "turn 1 is 'observation'"),
    ({"conversations": [{"from": "human", "value": "a"}]}, "count must be even"),
    ({"conversations": [{"from": "human", "value": "a"},
                        {"from": "function_call", "value": "{\"name\": \"x\"}"}]},
     "object arguments"),
    ({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": " "}]},
     "is empty"),
])
def test_the_sharegpt_checker_refuses_what_the_loader_drops(example: dict[str, Any],
                                                            words: str) -> None:
    with pytest.raises(formats.FormatError, match=words):
        formats.check_sharegpt(example)


def _bad_row(session: Any, seed: int) -> None:
    """A record stored before arguments were checked at append time."""
    record = make_record(seed)
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{not json"
    session.execute(insert(TrajectoryRow).values(
        id=f"bad{seed}", repository=record["repository"], chain_id="c", policy="llm",
        model=None, score=1.0, tokens=1, tool_calls=1, stages=2, created_at="x",
        document=json.dumps({k: v for k, v in record.items() if k not in ("messages", "tools")}),
        training_line=json.dumps({"messages": record["messages"], "tools": record["tools"]})))


def test_a_failed_export_leaves_the_previous_version_and_nothing_half_written(
        sqlite_db: Database, tmp_path: Path) -> None:
    out = tmp_path / "export"
    with sqlite_db.session() as session:
        for seed in range(3):
            append(session, make_record(seed))
        first = export(session, out, "sharegpt")
        append(session, make_record(10))
        _bad_row(session, 11)
    before = sorted(p.name for p in out.iterdir())
    with sqlite_db.session() as session, pytest.raises(ExportError, match="bad11"):
        export(session, out, "sharegpt")
    assert sorted(p.name for p in out.iterdir()) == before
    (out / "sharegpt-00002-00001.jsonl").write_text("left by a crash\n")
    with sqlite_db.session() as session:
        session.query(TrajectoryRow).filter(TrajectoryRow.id == "bad11").delete()
    with sqlite_db.session() as session:
        second = export(session, out, "sharegpt", policy="all")
    assert first.records == 3 and second.records == 1 and second.manifest is not None
    manifest = json.loads(second.manifest.read_text())
    assert manifest["version"] == 2 and manifest["policies"] == {"replay": 1}
    assert "left by a crash" not in (out / "sharegpt-00002-00001.jsonl").read_text()
    with sqlite_db.session() as session, pytest.raises(ExportError, match="holds an export"):
        export(session, out, "sharegpt", policy="llm")


@pytest.mark.parametrize("fmt", ["openai", "hf"])
def test_a_failure_while_shards_are_written_leaves_nothing(sqlite_db: Database,
                                                          tmp_path: Path, fmt: str) -> None:
    """Shards of several megabytes were already being written, hashed and finished when a
    record failed: the partial files go."""
    out = tmp_path / "export"
    with sqlite_db.session() as session:
        for seed in range(4):
            append(session, make_record(seed, tool_calls=40, observation_chars=20_000))
        broken = append(session, make_record(9)).id
        export(session, tmp_path / "before", fmt)  # every record's line is stored
        session.execute(TrajectoryRow.__table__.update().where(TrajectoryRow.id == broken)
                        .values(document="{cut short"))
    with sqlite_db.session() as session, pytest.raises(orjson.JSONDecodeError):
        export(session, out, fmt, shard_bytes=2_000_000)
    assert [p for p in out.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("fmt", ["openai", "hf"])
def test_what_a_manifest_names_is_on_disk_before_the_manifest(
        sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """A machine that crashes right after an export must not come back with a manifest
    naming shards whose bytes never reached the disk: every shard and the manifest are
    synced, and the directories holding their new names, before the manifest's rename."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source: Any, target: Any, **kwargs: Any) -> None:
        events.append(("rename", str(target)))
        real_replace(source, target, **kwargs)

    out = tmp_path / "export"
    with sqlite_db.session() as session:
        for seed in range(3):
            append(session, make_record(seed, tool_calls=20, observation_chars=20_000))
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        done = export(session, out, fmt, shard_bytes=200_000)
    assert done.manifest is not None and len(done.shards) >= 2
    manifest = events.index(("rename", str(done.manifest)))
    before = events[:manifest]
    for shard in done.shards:
        assert ("fsync", f"{shard}.partial") in before, shard
        assert events.index(("fsync", f"{shard}.partial")) < events.index(("rename", str(shard)))
    assert ("fsync", str(done.shards[0].parent)) in before[max(
        events.index(("rename", str(shard))) for shard in done.shards):]
    assert ("fsync", str(out / f".{done.manifest.name}.partial")) in before
    assert events[manifest + 1] == ("fsync", str(out))


def test_export_by_policy(sqlite_db: Database, tmp_path: Path) -> None:
    with sqlite_db.session() as session:
        append(session, make_record(1, policy="replay"))
        append(session, make_record(2, policy="llm"))
        only = export(session, tmp_path / "llm", "openai", policy="llm")
        everything = export(session, tmp_path / "all", "openai")
    assert only.records == 1 and everything.records == 2
    assert only.manifest is not None
    assert json.loads(only.manifest.read_text())["policies"] == {"llm": 1}
    with sqlite_db.session() as session, pytest.raises(ExportError, match="is a file"):
        (tmp_path / "file").write_text("x")
        export(session, tmp_path / "file", "openai")


def test_a_time_split_keeps_fresh_trajectories_for_evaluation(sqlite_db: Database,
                                                              tmp_path: Path) -> None:
    with sqlite_db.session() as session:
        append(session, make_record(1, merged=("2025-01-05T10:00:00+00:00",
                                               "2025-02-01T10:00:00+00:00")))
        append(session, make_record(2, merged=("2025-05-05T10:00:00+00:00",
                                               "2025-06-01T10:00:00+00:00")))
        append(session, make_record(3, merged=("2025-02-05T10:00:00+00:00",
                                               "2025-04-01T10:00:00+00:00")))
        append(session, make_record(4))  # written before merge times were recorded
        result = export(session, tmp_path / "split", "sharegpt",
                        test_after=datetime(2025, 3, 1, tzinfo=UTC))
    assert result.manifest is not None
    manifest = json.loads(result.manifest.read_text())
    assert manifest["split"] == {"test_after": "2025-03-01T00:00:00+00:00", "train": 3,
                                 "test": 1, "undated": 1}
    test_shards = [s for s in manifest["shards"] if s["split"] == "test"]
    assert len(test_shards) == 1 and "-test-" in test_shards[0]["file"]
    assert test_shards[0]["records"] == 1


def test_the_hf_export_loads_as_a_dataset_with_its_card(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is a dev dependency")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = tmp_path / "hf"
    cut = datetime(2025, 3, 1, tzinfo=UTC)
    early, late = ("2025-01-05T10:00:00+00:00",) * 2, ("2025-05-05T10:00:00+00:00",) * 2
    with sqlite_db.session() as session:
        for seed, merged in ((1, early), (2, early), (3, late)):
            append(session, {**make_record(seed, merged=merged), "license": "MIT"})
        first = export(session, out, "hf", test_after=cut)
        append(session, make_record(4, merged=late, policy="llm"))
        second = export(session, out, "hf", test_after=cut)
    assert (first.records, second.records) == (3, 1)
    for result in (first, second):
        assert result.manifest is not None
        for shard in json.loads(result.manifest.read_text())["shards"]:
            data = (out / shard["file"]).read_bytes()
            assert (shard["blake3"], shard["bytes"]) == (blake3.blake3(data).hexdigest(),
                                                         len(data))
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (2, 2)
    row = loaded["train"][0]
    assert row["repository"] == "textkit-dev/textkit" and row["license"] == "MIT"
    assert row["chain_length"] == 2 and row["stage_verdicts"] == ["passed", "passed"]
    formats.check_openai({"messages": row["messages"]})
    card = (out / "README.md").read_text()
    assert "| textkit-dev/textkit | MIT | 4 |" in card
    assert "trajectories: 4 (2 test, 2 train)" in card and "1 llm, 3 replay" in card


def test_hf_shards_are_plain_by_default_and_zstd_on_request(sqlite_db: Database,
                                                            tmp_path: Path) -> None:
    """Both hold the same rows; only the labels carry statistics (the min and max a reader
    filters row groups by), never the conversations."""
    import pyarrow.parquet as pq

    with sqlite_db.session() as session:
        for seed in range(3):
            append(session, make_record(seed, tool_calls=30))
        plain = export(session, tmp_path / "plain", "hf")
        small = export(session, tmp_path / "zstd", "hf", compression="zstd")
        with pytest.raises(ExportError, match="only the hf format compresses"):
            export(session, tmp_path / "jsonl", "sharegpt", compression="zstd")
        with pytest.raises(ExportError, match="compression must be one of none, zstd"):
            export(session, tmp_path / "other", "hf", compression="gzip")
    assert not (tmp_path / "jsonl").exists() and not (tmp_path / "other").exists()
    for result, name, codec in ((plain, "none", "UNCOMPRESSED"), (small, "zstd", "ZSTD")):
        assert result.manifest is not None
        assert json.loads(result.manifest.read_text())["compression"] == name
        metadata = pq.ParquetFile(result.shards[0]).metadata
        columns = {metadata.schema.column(i).path: metadata.row_group(0).column(i)
                   for i in range(metadata.num_columns)}
        assert {column.compression for column in columns.values()} == {codec}
        assert columns["repository"].is_stats_set and columns["merged_at.list.element"] \
            .is_stats_set
        assert not any(column.is_stats_set for path, column in columns.items()
                       if path.startswith(("messages.", "tools")))
    assert small.shards[0].stat().st_size < plain.shards[0].stat().st_size / 2
    assert pq.read_table(small.shards[0]) == pq.read_table(plain.shards[0])


def test_hf_row_groups_keep_the_export_order_and_a_row_that_does_not_encode_leaves_nothing(
        sqlite_db: Database, tmp_path: Path) -> None:
    """Row groups are encoded as their rows are read, and the file is written on a thread of
    its own meanwhile: the rows still come out whole and in order, and a row that does not
    decode fails the export with nothing half-written."""
    import pyarrow.parquet as pq

    out = tmp_path / "hf"
    with sqlite_db.session() as session:
        ids = [append(session, make_record(seed, tool_calls=40, observation_chars=20_000)).id
               for seed in range(14)]
        done = export(session, out, "hf")
    assert done.manifest is not None and len(done.shards) == 1
    shard = pq.ParquetFile(done.shards[0])
    assert shard.metadata.num_row_groups >= 2  # more than hf.ROW_GROUP_BYTES of rows
    assert shard.read(columns=["id"]).column("id").to_pylist() == ids
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with sqlite_db.session() as session:
        late = [append(session, make_record(seed, tool_calls=40, observation_chars=20_000)).id
                for seed in range(20, 34)]
        export(session, tmp_path / "elsewhere", "hf")  # stores the records' hf rows
        variant = formats.variant("hf", "string")
        session.execute(ExportLineRow.__table__.update()
                        .where(ExportLineRow.id == late[-2], ExportLineRow.variant == variant)
                        .values(line=b"not an arrow stream"))
    assert sum(len(row) for row in _stored_rows(sqlite_db, late[:-2])) > hf.ROW_GROUP_BYTES
    with sqlite_db.session() as session, pytest.raises(pa.ArrowInvalid):
        export(session, out, "hf")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_stored_hf_row_of_other_columns_is_refused(sqlite_db: Database,
                                                     tmp_path: Path) -> None:
    """A shard reads each stored row's batch against `hf.SCHEMA` without parsing the row's
    own schema; a row stored with other columns (a shaping version not bumped) fails the
    export with what to do, rather than being read as the wrong columns."""
    with sqlite_db.session() as session:
        record = append(session, make_record(1))
        export(session, tmp_path / "first", "hf")
        other = pa.schema([(field.name, pa.string()) for field in hf.SCHEMA][:3])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, other) as stream:
            stream.write_table(pa.Table.from_pylist([{"id": record.id}], schema=other))
        session.execute(ExportLineRow.__table__.update()
                        .where(ExportLineRow.id == record.id,
                               ExportLineRow.variant == formats.variant("hf", "string"))
                        .values(line=bytes(sink.getvalue())))
    with sqlite_db.session() as session, pytest.raises(ValueError, match="SHAPING_VERSION"):
        export(session, tmp_path / "second", "hf")
    assert not list((tmp_path / "second").rglob("*.parquet*"))


def _stored_rows(db: Database, ids: list[str]) -> list[bytes]:
    with db.session() as session:
        return [line for (line,) in session.execute(
            select(ExportLineRow.line).where(ExportLineRow.id.in_(ids),
                                             ExportLineRow.variant == formats.variant("hf",
                                                                                      "string")))]


VARIANTS = [("openai", "string"), ("openai", "object"), ("sharegpt", "string"),
            ("hf", "string")]


def _old_row(session: Any, seed: int) -> str:
    """A record stored before export lines were: its trajectory row and no line."""
    record = make_record(seed)
    record["id"] = f"old{seed}"
    session.execute(insert(TrajectoryRow).values(
        id=record["id"], repository=record["repository"], chain_id="c", policy="replay",
        model=None, score=1.0, tokens=1, tool_calls=1, stages=2, created_at="x",
        document=json.dumps({k: v for k, v in record.items() if k not in ("messages", "tools")}),
        training_line=json.dumps({"messages": record["messages"], "tools": record["tools"]})))
    return record["id"]


@pytest.mark.parametrize(("fmt", "arguments"), VARIANTS)
def test_exported_bytes_are_what_the_shaping_produces(database: Database, tmp_path: Path,
                                                      fmt: str, arguments: str) -> None:
    with database.session() as session:
        fresh = append(session, make_record(1)).id
        old = _old_row(session, 2)
    with database.session() as session:
        first = export(session, tmp_path / "first", fmt, arguments=arguments)
        again = export(session, tmp_path / "again", fmt, arguments=arguments)
        records = {row.id: {**row.record(), "id": row.id}
                   for row in session.scalars(select(TrajectoryRow))}
        stored = dict(session.execute(select(ExportLineRow.id, ExportLineRow.line).where(
            ExportLineRow.variant == formats.variant(fmt, arguments))).all())
    assert set(stored) == {fresh, old}  # the old record's line was stored by the export
    for record_id, line in stored.items():
        assert line == formats.line(fmt, records[record_id], arguments)
    if fmt == "hf":
        import pyarrow.parquet as pq

        table = pq.read_table(first.shards[0])
        expected = [hf.row(records[i], formats.openai(records[i])) for i in (fresh, old)]
        assert table.to_pylist() == expected
        return
    written = [p.read_bytes() for p in (*first.shards, *again.shards)]
    shaped = formats.sharegpt if fmt == "sharegpt" else (
        lambda record: formats.openai(record, arguments))
    expected_bytes = b"".join(orjson.dumps(shaped(records[i])) + b"\n" for i in (fresh, old))
    assert written == [expected_bytes, expected_bytes]


def test_an_export_streams_only_its_own_variants_stored_lines(sqlite_db: Database,
                                                               tmp_path: Path) -> None:
    """Stored bytes are written as they are; a line stored under another variant (such as
    an older SHAPING_VERSION's) is not used."""
    with sqlite_db.session() as session:
        appended = append(session, make_record(3)).id
        session.execute(insert(ExportLineRow).values(
            id=appended, variant=formats.variant("sharegpt") + "-older", line=b"stale\n"))
        session.execute(ExportLineRow.__table__.update().values(line=b"stale\n"))
    with sqlite_db.session() as session:
        result = export(session, tmp_path / "out", "openai")
    assert b"stale" in result.shards[0].read_bytes()  # the current variant's stored bytes
    with sqlite_db.session() as session:
        result = export(session, tmp_path / "sharegpt", "sharegpt")
    assert json.loads(result.shards[0].read_bytes())["conversations"][0]["from"] == "system"


def test_an_export_writes_the_lines_as_they_were_when_it_began(
        database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection removes a record's stored line and stores another record's while
    an export is writing: the export still writes every record's own line, read from the
    state it began with."""
    with database.session() as session:
        ids = [append(session, make_record(seed)).id for seed in range(3)]
        lines = dict(session.execute(select(ExportLineRow.id, ExportLineRow.line)).all())
    variant = formats.variant("openai")
    add = corpus.export._ShardWriter.add

    def add_while_lines_change(writer: corpus.export._ShardWriter, line: bytes) -> None:
        if writer.count == 0 and not writer.shards[:-1]:
            with database.engine.begin() as other:
                other.execute(ExportLineRow.__table__.delete().where(
                    ExportLineRow.id == ids[-1]))
                other.execute(insert(ExportLineRow).values(id="another", variant=variant,
                                                           line=b"another record's line\n"))
        add(writer, line)

    monkeypatch.setattr(corpus.export._ShardWriter, "add", add_while_lines_change)
    with database.session() as session:
        result = export(session, tmp_path / "out", "openai")
    assert result.records == 3
    assert b"".join(p.read_bytes() for p in result.shards) == b"".join(lines[i] for i in ids)


def test_a_session_goes_on_appending_after_an_export(database: Database,
                                                     tmp_path: Path) -> None:
    """Another process appended between the export and the session's next append."""
    with database.session() as session:
        append(session, make_record(1))
    with database.session() as session:
        assert export(session, tmp_path / "out", "openai").records == 1
        with database.session() as other:
            append(other, make_record(2))
        append(session, make_record(3))
    with database.session() as session:
        assert export(session, tmp_path / "out", "openai").records == 2
