"""Exporting the corpus as JSONL shards with a manifest; again and again, only what is new.

Each export writes `<format>-<version>-<shard>.jsonl` files and `manifest-<version>.json`
(record count, size and BLAKE3 digest per shard, schema version, the filter, the cursor it
reached, and the previous manifest's name and sha256, so the versions form a chain). Every
record is shaped and checked against its loader's rules before anything is visible: an export
writes a record's stored line (`corpus.formats.line`, kept only once it passed the rules of the
current `formats.SHAPING_VERSION`, at append or by an earlier export), and shapes and checks
here the records without one; it does not parse the stored bytes again. Shards are written as
hidden `.partial` files and take their names only once every record passed, then the manifest
is written in one rename. Shards, manifest and card are on disk (fsync, their directory too)
before the manifest names them, so a crash of the machine cannot leave a manifest that names
empty files. A failed export leaves the previous version as it was; shards a crash left
without their manifest are removed by the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Row, Select, and_, or_, select
from sqlalchemy.orm import Session

from corpus import formats
from corpus.record import SCHEMA_VERSION
from corpus.shardfile import ShardFile
from corpus.store import SHAPING_ERRORS, ExportLineRow, TrajectoryRow, store_line, with_lines

FORMATS = ("openai", "sharegpt", "hf")
POLICIES = ("all", "llm", "replay")
ARGUMENTS = ("string", "object")
COMPRESSIONS = ("none", "zstd")
"""How hf shards' pages are compressed. `none`, the default, exports in 1.7 to 2.1 times a
plain synced write of the shards' bytes; `zstd` makes shards about half as big and takes
about twice as long to export (`bench/corpus.py` prints both)."""
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportResult:
    manifest: Path | None
    records: int
    shards: tuple[Path, ...]


def _latest_manifest(out: Path) -> tuple[Path | None, dict[str, Any] | None]:
    manifests = sorted(out.glob("manifest-*.json"))
    if not manifests:
        return None, None
    return manifests[-1], json.loads(manifests[-1].read_text())


def _selected(query: Any, session: Session, after: tuple[str, str] | None,
              since_id: str | None, policy: str) -> Any:
    """``query`` narrowed to the records an export takes, oldest first."""
    query = query.order_by(TrajectoryRow.appended_at, TrajectoryRow.id)
    if policy != "all":
        query = query.where(TrajectoryRow.policy == policy)
    cursor = after
    if since_id:
        anchor = session.get(TrajectoryRow, since_id)
        if anchor is None:
            raise ExportError(f"--since {since_id}: no such record in the corpus")
        cursor = max(cursor or ("", ""), (anchor.appended_at.isoformat(), anchor.id))
    if cursor:
        moment = datetime.fromisoformat(cursor[0])
        query = query.where(or_(TrajectoryRow.appended_at > moment,
                                and_(TrajectoryRow.appended_at == moment,
                                     TrajectoryRow.id > cursor[1])))
    return query


def _line_of(variant: str) -> Any:
    return and_(ExportLineRow.id == TrajectoryRow.id, ExportLineRow.variant == variant)


def _shape_missing(session: Session, selection: Select[Any], fmt: str, arguments: str) -> None:
    """Shape, check and store the lines the selected records lack (appended before lines
    were stored, or under an older shaping): once, so later exports only stream them."""
    variant = formats.variant(fmt, arguments)
    missing = session.scalars(selection.outerjoin(ExportLineRow, _line_of(variant))
                              .where(ExportLineRow.id.is_(None))).all()
    for record_id in missing:
        row = session.get(TrajectoryRow, record_id)
        assert row is not None  # selected in this transaction
        try:
            line = formats.line(fmt, {**row.record(), "id": row.id}, arguments)
        except SHAPING_ERRORS as exc:
            raise ExportError(f"record {row.id}: {exc}") from exc
        store_line(session, row.id, variant, line)
        session.expunge(row)  # its conversation is not needed again


def _rows(session: Session, after: tuple[str, str] | None, since_id: str | None,
          policy: str, fmt: str, arguments: str) -> Iterator[tuple[Row[Any], bytes]]:
    """(id, appended_at, policy, repository, document) of each record to export, with its
    line."""
    _shape_missing(session, _selected(select(TrajectoryRow.id), session, after, since_id,
                                      policy), fmt, arguments)
    query = _selected(select(TrajectoryRow.id, TrajectoryRow.appended_at, TrajectoryRow.policy,
                             TrajectoryRow.repository, TrajectoryRow.document)
                      .join(ExportLineRow, _line_of(formats.variant(fmt, arguments))),
                      session, after, since_id, policy)
    yield from with_lines(session, query)


class _ShardWriter:
    def __init__(self, out: Path, prefix: str, limit: int) -> None:
        self.out, self.prefix, self.limit = out, prefix, limit
        self.shards: list[dict[str, Any]] = []
        self.file: ShardFile | None = None
        self.count = 0

    def add(self, line: bytes) -> None:
        if self.file is None or (self.file.size and self.file.size + len(line) > self.limit):
            self.close()
            name = f"{self.prefix}-{len(self.shards) + 1:05d}.jsonl"
            self.file = ShardFile(self.out / f"{name}.partial")
            self.shards.append({"file": name})
            self.count = 0
        self.file.write(line)
        self.count += 1

    def close(self) -> None:
        if self.file is None:
            return
        digest = self.file.close()
        self.shards[-1].update(records=self.count, bytes=self.file.size, blake3=digest)
        self.file = None

    def publish(self) -> None:
        """Give every shard, closed, its name."""
        for shard in self.shards:
            (self.out / f"{shard['file']}.partial").replace(self.out / shard["file"])

    def discard(self) -> None:
        if self.file is not None:
            self.file.abandon()
            self.file = None
        for shard in self.shards:
            (self.out / f"{shard['file']}.partial").unlink(missing_ok=True)


class _ParquetShards:
    """Parquet shards under `data/`, named `<split>-<version>-<n>.parquet` so the dataset
    card's globs find every version's files. A shard's row groups (`hf.ROW_GROUP_BYTES` of
    rows each) are encoded while the next rows are read (:class:`_ParquetFile`)."""

    def __init__(self, out: Path, prefix: str, limit: int, compression: str) -> None:
        from corpus import hf  # pyarrow is needed for this format only

        self.hf = hf
        self.out, self.prefix, self.limit, self.compression = out, prefix, limit, compression
        (out / "data").mkdir(exist_ok=True)
        self.shards: list[dict[str, Any]] = []
        self.file: _ParquetFile | None = None
        self.group: list[bytes] = []
        self.group_size = self.size = self.count = 0

    def add(self, line: bytes) -> None:
        """``line``: the record's encoded row, whose size the shard size limit counts (the
        Parquet file is smaller)."""
        if self.file is None:
            name = f"data/{self.prefix}-{len(self.shards) + 1:05d}.parquet"
            self.file = _ParquetFile(self.hf, self.out / f"{name}.partial", self.compression)
            self.shards.append({"file": name})
        self.group.append(line)
        self.group_size += len(line)
        self.size += len(line)
        self.count += 1
        if self.group_size >= self.hf.ROW_GROUP_BYTES:
            self._flush_group()
        if self.size >= self.limit:
            self.close()

    def _flush_group(self) -> None:
        if self.file is not None and self.group:
            self.file.add(self.group)
        self.group, self.group_size = [], 0

    def close(self) -> None:
        if self.file is None:
            return
        self._flush_group()
        file, self.file = self.file, None
        digest = file.close()
        self.shards[-1].update(records=self.count, bytes=file.file.size, blake3=digest)
        self.size = self.count = 0

    def publish(self) -> None:
        """Give every shard, closed, its name."""
        for shard in self.shards:
            (self.out / f"{shard['file']}.partial").replace(self.out / shard["file"])

    def discard(self) -> None:
        if self.file is not None:
            self.file.abandon()
            self.file = None
        self.group = []
        for shard in self.shards:
            (self.out / f"{shard['file']}.partial").unlink(missing_ok=True)


class _ParquetFile:
    """A Parquet shard being made. Each row group (`hf.Shard`) is encoded on a thread of its
    own while the export's thread reads the next rows, and the encoded pieces go to the file
    (`shardfile.ShardFile`), which hashes them and writes them to disk on threads of their own.
    pyarrow lets other threads run while it encodes, and calls back into Python for each
    piece of about a megabyte, which is only copied into a buffer there. One row group is
    encoded at a time, so the rows held are those of two: about 80 ms for 200 trajectories
    against 110-120 ms with the encoding on the export's thread (the earlier form, whose
    pieces were written through the page cache, had measured an encoding thread slower)."""

    def __init__(self, hf: Any, path: Path, compression: str) -> None:
        self.file = ShardFile(path)
        self._shard = hf.Shard(compression, self.file.write)
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-encode")
        self._encoding: Future[None] | None = None

    def add(self, rows: list[bytes]) -> None:
        """``rows`` as the next row group, once the previous one is encoded. A row that did not
        encode is raised here or by :meth:`close`."""
        self._encoded()
        self._encoding = self._encoder.submit(self._shard.add, rows)

    def _encoded(self) -> None:
        encoding, self._encoding = self._encoding, None
        if encoding is not None:
            encoding.result()

    def close(self) -> str:
        """Wait for the file to be whole and on disk; its BLAKE3 digest. A failed write (a
        full disk) is raised here."""
        try:
            self._encoded()
            self._shard.close()
        except BaseException:
            self.abandon()
            raise
        self._encoder.shutdown(wait=True)
        return self.file.close()

    def abandon(self) -> None:
        self._encoder.shutdown(wait=True, cancel_futures=True)
        self.file.abandon()


def is_test(record: dict[str, Any], test_after: datetime) -> bool | None:
    """Whether every PR of the record merged after ``test_after`` (None: a PR's merge time
    is not recorded)."""
    moments = [stage.get("merged_at") for stage in record.get("stages", [])]
    if not moments or not all(moments):
        return None
    earliest = min(datetime.fromisoformat(m) for m in moments)
    cut = test_after if test_after.tzinfo else test_after.replace(tzinfo=UTC)
    return (earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)) > cut


def export(session: Session, out: Path, fmt: str = "openai", since: str | None = None,
           shard_bytes: int = DEFAULT_SHARD_BYTES, arguments: str = "string",
           policy: str = "all", test_after: datetime | None = None,
           compression: str = "none") -> ExportResult:
    """Export what was appended since the last export into ``out`` (see the module).
    ``test_after``: trajectories whose PRs all merged after it go to `test` shards (a fresh
    evaluation split), the rest to the training shards. ``compression``: of hf shards."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if policy not in POLICIES or arguments not in ARGUMENTS:
        raise ExportError(f"policy must be one of {', '.join(POLICIES)} and arguments one of "
                          f"{', '.join(ARGUMENTS)}")
    if compression not in COMPRESSIONS or (compression != "none" and fmt != "hf"):
        raise ExportError(f"compression must be one of {', '.join(COMPRESSIONS)}, and only the "
                          f"hf format compresses (got {compression!r} for {fmt})")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give a directory for the export")
    out.mkdir(parents=True, exist_ok=True)
    previous, manifest = _latest_manifest(out)
    cut = test_after.isoformat() if test_after else None
    settings = {"format": fmt, "policy": policy, "arguments": arguments, "test_after": cut}
    if manifest is not None:
        held = {"format": manifest.get("format"),
                "policy": manifest.get("filter", {}).get("policy", "all"),
                "arguments": manifest.get("arguments", "string"),
                "test_after": (manifest.get("split") or {}).get("test_after")}
        if held != settings:
            raise ExportError(f"{out} holds an export with {held}; use another directory for "
                              f"{settings}")
    version = (manifest["version"] + 1) if manifest else 1
    _remove_orphans(out, version)
    after = tuple(manifest["cursor"]) if manifest and manifest.get("cursor") else None
    writers: dict[str, _ShardWriter | _ParquetShards]
    if fmt == "hf":
        try:
            writers = {split: _ParquetShards(out, f"{split}-{version:05d}", shard_bytes,
                                             compression)
                       for split in ("train", "test")}
        except ImportError as exc:
            raise ExportError(f"the hf format needs pyarrow ({exc})") from exc
    else:
        writers = {"train": _ShardWriter(out, f"{fmt}-{version:05d}", shard_bytes),
                   "test": _ShardWriter(out, f"{fmt}-{version:05d}-test", shard_bytes)}
    records, cursor, policies, splits = 0, after, Counter[str](), Counter[str]()
    sources: Counter[str] = Counter()
    licenses: dict[str, str] = {}
    try:
        for row, line in _rows(session, after, since, policy, fmt, arguments):
            record = orjson.loads(row.document)  # the labels; the conversation is in the line
            test = is_test(record, test_after) if test_after else False
            split = "test" if test else "train"
            writers[split].add(line)
            del line  # before the next is read, so that its buffer is reused (store.with_lines)
            sources[row.repository] += 1
            licenses[row.repository] = record.get("license") or licenses.get(row.repository, "")
            records += 1
            policies[row.policy] += 1
            splits[split] += 1
            splits["undated"] += test is None
            cursor = (row.appended_at.isoformat(), row.id)
        for writer in writers.values():  # every shard whole before any takes its name
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    if records == 0:
        for writer in writers.values():
            writer.discard()
        return ExportResult(None, 0, ())
    for split, writer in writers.items():
        writer.publish()
        for shard in writer.shards:
            shard["split"] = split
    shards = [*writers["train"].shards, *writers["test"].shards]
    document = {
        "version": version, "format": fmt, "schema_version": SCHEMA_VERSION,
        "arguments": arguments, "compression": compression,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "filter": {"since": since, "policy": policy,
                   "after_previous": previous.name if previous else None},
        "records": records, "policies": dict(sorted(policies.items())),
        "repositories": dict(sorted(sources.items())), "licenses": dict(sorted(licenses.items())),
        "split": {"test_after": cut, "train": splits["train"], "test": splits["test"],
                  "undated": splits["undated"]} if cut else None,
        "shards": shards, "cursor": list(cursor or ()),
        "previous": previous.name if previous else None,
        "previous_sha256": hashlib.sha256(previous.read_bytes()).hexdigest()
        if previous else None,
    }
    _sync_directory(out / "data" if fmt == "hf" else out)  # the shards' names, first
    path = out / f"manifest-{version:05d}.json"
    _publish(path, (json.dumps(document, indent=2) + "\n").encode())
    if fmt == "hf":
        _write_card(out)
    return ExportResult(path, records, tuple(out / s["file"] for s in shards))


def _write_card(out: Path) -> None:
    """The dataset card, from every manifest of the directory."""
    from corpus import hf

    manifests = [json.loads(p.read_text()) for p in sorted(out.glob("manifest-*.json"))]
    licenses: dict[str, str] = {}
    for manifest in manifests:  # a licence found once names the repository's
        licenses |= {k: v for k, v in manifest.get("licenses", {}).items() if v}
    repositories: Counter[tuple[str, str]] = Counter()
    for manifest in manifests:
        for name, count in manifest.get("repositories", {}).items():
            repositories[(name, licenses.get(name, ""))] += count
    _publish(out / "README.md", hf.card(manifests, repositories).encode())


def _publish(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all, and durably: a hidden partial file, on disk,
    renamed, the rename on disk."""
    staged = path.with_name(f".{path.name}.partial")
    with staged.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    staged.replace(path)
    _sync_directory(path.parent)


def _sync_directory(path: Path) -> None:
    """Put the directory's entries (the names renames gave) on disk."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_orphans(out: Path, version: int) -> None:
    """Shards of ``version`` or later (no manifest names them: a crash came between their
    rename and the manifest) and partial files."""
    shard = re.compile(r"(?:(?:openai|sharegpt)-(\d{5})-(?:test-)?\d{5}\.jsonl"
                       r"|(?:train|test)-(\d{5})-\d{5}\.parquet)")
    for path in [*out.iterdir(), *((out / "data").iterdir() if (out / "data").is_dir() else [])]:
        match = shard.fullmatch(path.name)
        number = match and (match.group(1) or match.group(2))
        if (number and int(number) >= version) or path.name.endswith(".partial"):
            path.unlink()
