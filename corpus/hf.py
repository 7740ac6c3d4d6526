"""The corpus as a Hugging Face dataset directory: Parquet shards under `data/` and a dataset
card (`README.md`) whose header tells `datasets.load_dataset(DIR)` the splits.

Each row is one trajectory: its conversation in the alternating OpenAI shape the other
exports use (`corpus.formats.openai`, arguments as JSON text), the tools as JSON text, and
the labels a trainer filters on (policy, model, repository, chain length, link kinds, stage
verdicts, merge times, tokens, tool calls).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_CALL = pa.struct([("id", pa.string()), ("type", pa.string()),
                   ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()),
                     ("tool_calls", pa.list_(_CALL))])
SCHEMA = pa.schema([
    ("id", pa.string()), ("repository", pa.string()), ("license", pa.string()),
    ("policy", pa.string()), ("model", pa.string()), ("chain_id", pa.string()),
    ("chain_length", pa.int32()), ("link_kinds", pa.list_(pa.string())),
    ("stage_verdicts", pa.list_(pa.string())), ("merged_at", pa.list_(pa.string())),
    ("score", pa.float64()), ("tokens", pa.int64()), ("tokens_billed", pa.int64()),
    ("tool_calls", pa.int64()), ("messages", pa.list_(MESSAGE)), ("tools", pa.string()),
])
"""A row's columns. Changing them changes the rows stored with each record
(:func:`encoded_row`): bump `corpus.formats.SHAPING_VERSION` with it."""


def row(record: dict[str, Any], shaped: dict[str, Any]) -> dict[str, Any]:
    """One Parquet row: ``shaped`` is the record in the openai export's shape."""
    stages = record.get("stages", [])
    return {
        "id": record.get("id", ""), "repository": record.get("repository", ""),
        "license": record.get("license") or "", "policy": record.get("policy", ""),
        "model": record.get("model") or "", "chain_id": str(record["chain"].get("id", "")),
        "chain_length": len(stages), "link_kinds": list(record["chain"].get("kinds", [])),
        "stage_verdicts": [s.get("verdict", "") for s in stages],
        "merged_at": [s.get("merged_at", "") for s in stages],
        "score": float(record.get("score", 0.0)), "tokens": int(record.get("tokens", 0)),
        "tokens_billed": int(record.get("tokens_billed") or 0),
        "tool_calls": int(record.get("tool_calls", 0)),
        "messages": [{"role": m["role"], "content": m.get("content") or "",
                      "tool_calls": m.get("tool_calls") or []} for m in shaped["messages"]],
        "tools": json.dumps(shaped["tools"], ensure_ascii=False),
    }


def encoded_row(record: dict[str, Any], shaped: dict[str, Any]) -> bytes:
    """The record's row (:func:`row`) as an Arrow IPC stream: stored with the record, it is
    read back without parsing when a shard is written."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as stream:
        stream.write_table(pa.Table.from_pylist([row(record, shaped)], schema=SCHEMA))
    return bytes(sink.getvalue())


LABELS = [f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name
          for field in SCHEMA if field.name not in ("messages", "tools")]
"""The Parquet columns of the labels (a list's values are its `.list.element` column)."""


def parquet(compression: str) -> dict[str, Any]:
    """How shards are encoded. ``compression``: one of `corpus.export.COMPRESSIONS`. No
    dictionary encoding, and statistics (the min and max a reader filters row groups by) for
    the labels only: the conversations are long distinct strings, where a dictionary costs
    more time than it saves bytes and comparing them for a minimum took a third of the
    encoding."""
    return {"compression": compression, "use_dictionary": False, "write_statistics": LABELS}


ROW_GROUP_BYTES = 8 << 20
"""About how many bytes of rows (:func:`encoded_row`) a row group holds: an export encodes one
while it reads the next, and a reader holds one in memory at a time."""


class Shard:
    """One Parquet file (:func:`parquet`) being encoded, a row group at a time: its bytes go
    to ``write`` in pieces of about a megabyte as pyarrow makes them, so the file is written
    while the rest is encoded."""

    def __init__(self, compression: str, write: Callable[[bytes], object]) -> None:
        self._stream = pa.BufferedOutputStream(pa.PythonFile(_Pieces(write), mode="w"),
                                               buffer_size=1 << 20)
        self._writer = pq.ParquetWriter(self._stream, SCHEMA, **parquet(compression))

    def add(self, rows: list[bytes]) -> None:
        """``rows`` (:func:`encoded_row`) as one row group."""
        self._writer.write_table(pa.Table.from_batches([_batch(encoded) for encoded in rows],
                                                       schema=SCHEMA))

    def close(self) -> None:
        """The footer: the file is whole."""
        self._writer.close()
        self._stream.close()


def _batch(encoded: bytes) -> pa.RecordBatch:
    """The row of an :func:`encoded_row` stream. Its schema message is compared with
    :data:`SCHEMA`'s, not parsed: parsing every row's nested schema took 17 ms of processor
    time for 200 rows, against 3 ms. A row of another schema (stored under a shaping version
    that was not bumped) is refused."""
    reader = pa.BufferReader(encoded)
    if not pa.ipc.read_message(reader).metadata.equals(_SCHEMA_MESSAGE):
        raise ValueError("a stored hf row has columns other than corpus.hf.SCHEMA's: bump "
                         "corpus.formats.SHAPING_VERSION when the columns change")
    return pa.ipc.read_record_batch(pa.ipc.read_message(reader), SCHEMA)


_SCHEMA_MESSAGE = pa.ipc.read_message(SCHEMA.serialize()).metadata


class _Pieces:
    """The file object pyarrow writes a shard to: every piece goes to ``write``."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write, self.closed = write, False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def card(manifests: list[dict[str, Any]], repositories: Counter[tuple[str, str]]) -> str:
    """The dataset card: how to load it, what a row holds, where it came from and how each
    trajectory was verified. ``repositories``: (repository, licence) -> trajectories."""
    records = sum(m["records"] for m in manifests)
    splits = Counter[str]()
    policies = Counter[str]()
    for manifest in manifests:
        for shard in manifest["shards"]:
            splits[shard.get("split", "train")] += shard["records"]
        policies.update(manifest.get("policies", {}))
    sources = "\n".join(f"| {name} | {license or 'not detected: check the repository'} | "
                        f"{count} |" for (name, license), count in sorted(repositories.items()))
    configs = "\n".join(f"  - split: {split}\n    path: \"data/{split}-*.parquet\""
                        for split in sorted(splits))
    return f"""---
configs:
- config_name: default
  data_files:
{configs}
---

# Long-horizon coding trajectories (daVinci-Agency)

Each row is one agent trajectory over a chain of merged pull requests of a real repository:
the agent works through the chain's stages in order, inside a sandbox, and every stage was
checked by the PR's own tests. Only rollouts the verifier accepted are here.

```python
import datasets
corpus = datasets.load_dataset("path/to/this/directory")
```

## Counts

- trajectories: {records} ({", ".join(f"{n} {s}" for s, n in sorted(splits.items()))})
- by policy: {", ".join(f"{n} {p}" for p, n in sorted(policies.items()))} (`llm`: a model's
  work; `replay`: the human developers' own commits replayed through the same tools)
- export versions: {len(manifests)}

## Sources

| repository | licence | trajectories |
|---|---|---|
{sources}

## Schema

- `messages`: the conversation: `system`, then `user`/`tool` and `assistant` turns
  alternating, ending on the assistant; `tool_calls[].function.arguments` is JSON text.
- `tools`: the function schemas the agent had (JSON text).
- `policy`, `model`: who acted.
- `repository`, `license`, `chain_id`: where the work comes from.
- `chain_length`, `link_kinds`, `stage_verdicts`, `merged_at`: the chain, its PRs' links,
  each stage's verdict and each PR's merge time.
- `score`: the verifier's chain score; `tokens`: the conversation's length as the model server
  counted it; `tokens_billed`: what all calls cost; `tool_calls`: the tool calls made.

## How trajectories were verified

Each stage's hidden tests (the PR's tests that fail before and pass after the PR, and the
tests that kept passing) ran in a fresh sandbox holding only that state of the repository;
test infrastructure was restored from the reference before the run. A trajectory is kept
only when the rollout completed, every verifiable stage was resolved by the agent itself and
the chain score reached the threshold (0.8). Secret-shaped strings were redacted.
"""
