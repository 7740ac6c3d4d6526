"""Exporting the corpus as JSONL shards with a manifest; again and again, only what is new.

Each export writes `<format>-<version>-<shard>.jsonl` files and `manifest-<version>.json`
(record count, sha256 and size per shard, schema version, the filter, the cursor it reached,
and the previous manifest's name and sha256, so the versions form a chain).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from corpus.record import SCHEMA_VERSION
from corpus.store import TrajectoryRow

FORMATS = ("openai", "sharegpt")
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportResult:
    manifest: Path | None
    records: int
    shards: tuple[Path, ...]


def to_openai(document: dict[str, Any]) -> dict[str, Any]:
    return {"messages": document["messages"], "tools": document["tools"]}


def to_sharegpt(document: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT with function calls: an assistant turn with tool calls becomes its text (as
    `gpt`, when it has any) followed by `function_call` (a JSON list of name and arguments);
    tool results become `observation`."""
    turns: list[dict[str, str]] = []
    for message in document["messages"]:
        role, content = message["role"], message.get("content") or ""
        calls = message.get("tool_calls") or []
        if role == "assistant" and calls:
            if content.strip():
                turns.append({"from": "gpt", "value": content})
            turns.append({"from": "function_call", "value": json.dumps(
                [{"name": c["function"]["name"],
                  "arguments": json.loads(c["function"]["arguments"] or "{}")} for c in calls])})
        else:
            turns.append({"from": SHAREGPT_ROLES[role], "value": content})
    return {"conversations": turns, "tools": json.dumps(document["tools"])}


def _latest_manifest(out: Path) -> tuple[Path | None, dict[str, Any] | None]:
    manifests = sorted(out.glob("manifest-*.json"))
    if not manifests:
        return None, None
    return manifests[-1], json.loads(manifests[-1].read_text())


def _rows(session: Session, after: tuple[str, str] | None,
          since_id: str | None) -> Iterator[TrajectoryRow]:
    query = select(TrajectoryRow).order_by(TrajectoryRow.appended_at, TrajectoryRow.id)
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
    yield from session.scalars(query.execution_options(yield_per=200))


class _ShardWriter:
    def __init__(self, out: Path, prefix: str, limit: int) -> None:
        self.out, self.prefix, self.limit = out, prefix, limit
        self.shards: list[dict[str, Any]] = []
        self.handle: IO[bytes] | None = None
        self.digest = hashlib.sha256()
        self.size = self.count = 0

    def write(self, line: bytes) -> None:
        if self.handle is None or (self.size and self.size + len(line) > self.limit):
            self.close()
            name = f"{self.prefix}-{len(self.shards) + 1:05d}.jsonl"
            self.handle = (self.out / f"{name}.partial").open("wb")
            self.shards.append({"file": name})
            self.digest, self.size, self.count = hashlib.sha256(), 0, 0
        self.handle.write(line)
        self.digest.update(line)
        self.size += len(line)
        self.count += 1

    def close(self) -> None:
        if self.handle is None:
            return
        self.handle.close()
        name = self.shards[-1]["file"]
        (self.out / f"{name}.partial").rename(self.out / name)
        self.shards[-1].update(records=self.count, bytes=self.size,
                               sha256=self.digest.hexdigest())
        self.handle = None


def export(session: Session, out: Path, fmt: str = "openai", since: str | None = None,
           shard_bytes: int = DEFAULT_SHARD_BYTES) -> ExportResult:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    previous, manifest = _latest_manifest(out)
    if manifest is not None and manifest.get("format") != fmt:
        raise ExportError(f"{out} holds a {manifest.get('format')} export; use another "
                          f"directory for {fmt}")
    version = (manifest["version"] + 1) if manifest else 1
    after = tuple(manifest["cursor"]) if manifest and manifest.get("cursor") else None
    convert = to_openai if fmt == "openai" else to_sharegpt
    writer = _ShardWriter(out, f"{fmt}-{version:05d}", shard_bytes)
    records, cursor = 0, after
    try:
        for row in _rows(session, after, since):
            if fmt == "openai":
                line = row.training_line + "\n"
            else:
                line = json.dumps(convert(row.record()), ensure_ascii=False) + "\n"
            writer.write(line.encode())
            records += 1
            cursor = (row.appended_at.isoformat(), row.id)
    finally:
        writer.close()
    if records == 0:
        return ExportResult(None, 0, ())
    document = {
        "version": version, "format": fmt, "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "filter": {"since": since, "after_previous": previous.name if previous else None},
        "records": records, "shards": writer.shards, "cursor": list(cursor or ()),
        "previous": previous.name if previous else None,
        "previous_sha256": hashlib.sha256(previous.read_bytes()).hexdigest()
        if previous else None,
    }
    path = out / f"manifest-{version:05d}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return ExportResult(path, records, tuple(out / s["file"] for s in writer.shards))
