"""Figures about the corpus: size, acceptance, lengths, per repository and policy."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from corpus.store import RejectionRow, TrajectoryRow


def corpus_stats(session: Session) -> dict[str, Any]:
    """Size, acceptance, lengths (`tokens` as a trainer sees them, `tokens_billed` as the
    model server counted every call), overall and per repository, policy and chain length,
    like the paper's statistics."""
    rows = session.execute(select(TrajectoryRow.repository, TrajectoryRow.policy,
                                  TrajectoryRow.tokens, TrajectoryRow.tool_calls,
                                  TrajectoryRow.stages, TrajectoryRow.appended_at,
                                  TrajectoryRow.document)).all()
    rejections = session.execute(select(RejectionRow.repository, RejectionRow.policy,
                                        RejectionRow.verdict)).all()
    billed = [int(json.loads(r.document).get("tokens_billed") or 0) for r in rows]
    records = len(rows)
    attempts = records + len(rejections)
    result: dict[str, Any] = {
        "records": records, "rejected": len(rejections),
        "acceptance_rate": round(records / attempts, 4) if attempts else 0.0,
        **_figures([r.tokens for r in rows], [r.tool_calls for r in rows],
                   [r.stages for r in rows]),
        "tokens_billed": sum(billed),
        "mean_tokens_billed": round(statistics.fmean(billed), 2) if billed else 0.0,
    }
    rejected_length = [_length(r.verdict) for r in rejections]
    for key, of_row, of_rejection in (
            ("per_repository", lambda r: r.repository, lambda r, _: r.repository),
            ("per_policy", lambda r: r.policy, lambda r, _: r.policy),
            ("per_chain_length", lambda r: str(r.stages), lambda _, n: str(n))):
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            groups[str(of_row(row))].append(row)
        refused: dict[str, int] = defaultdict(int)
        for rejection, length in zip(rejections, rejected_length, strict=True):
            refused[str(of_rejection(rejection, length))] += 1
        result[key] = {name: {"records": len(group),
                              "acceptance_rate": round(len(group) / (len(group) + refused[name]),
                                                       4),
                              **_figures([r.tokens for r in group],
                                         [r.tool_calls for r in group],
                                         [r.stages for r in group])}
                       for name, group in sorted(groups.items(), key=lambda kv: _order(kv[0]))}
    days: dict[str, int] = defaultdict(int)
    for row in rows:
        days[row.appended_at.date().isoformat()] += 1
    total, growth = 0, []
    for day in sorted(days):
        total += days[day]
        growth.append({"date": day, "records": total})
    result["growth"] = growth
    return result


def _length(verdict: str) -> int:
    try:
        return len(json.loads(verdict).get("stages") or [])
    except (json.JSONDecodeError, AttributeError):
        return 0


def _order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (0, name)


def _figures(tokens: list[int], calls: list[int], stages: list[int]) -> dict[str, float]:
    def mean(values: list[int]) -> float:
        return round(statistics.fmean(values), 2) if values else 0.0

    def median(values: list[int]) -> float:
        return float(statistics.median(values)) if values else 0.0

    return {"mean_tokens": mean(tokens), "median_tokens": median(tokens),
            "mean_tool_calls": mean(calls), "median_tool_calls": median(calls),
            "mean_stages": mean(stages)}
