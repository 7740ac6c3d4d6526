"""Figures about the corpus: size, acceptance, lengths, per repository and policy."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from corpus.store import RejectionRow, TrajectoryRow


def corpus_stats(session: Session) -> dict[str, Any]:
    rows = session.execute(select(TrajectoryRow.repository, TrajectoryRow.policy,
                                  TrajectoryRow.tokens, TrajectoryRow.tool_calls,
                                  TrajectoryRow.stages, TrajectoryRow.appended_at,
                                  TrajectoryRow.document)).all()
    billed = [int(json.loads(r.document).get("tokens_billed") or 0) for r in rows]
    rejected = int(session.scalar(select(func.count()).select_from(RejectionRow)) or 0)
    records = len(rows)
    attempts = records + rejected
    result: dict[str, Any] = {
        "records": records, "rejected": rejected,
        "acceptance_rate": round(records / attempts, 4) if attempts else 0.0,
        **_figures([r.tokens for r in rows], [r.tool_calls for r in rows],
                   [r.stages for r in rows]),
        "tokens_billed": sum(billed),
        "mean_tokens_billed": round(statistics.fmean(billed), 2) if billed else 0.0,
    }
    for key, index in (("per_repository", 0), ("per_policy", 1)):
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            groups[str(row[index])].append(row)
        result[key] = {name: {"records": len(group),
                              **_figures([r.tokens for r in group],
                                         [r.tool_calls for r in group],
                                         [r.stages for r in group])}
                       for name, group in sorted(groups.items())}
    days: dict[str, int] = defaultdict(int)
    for row in rows:
        days[row.appended_at.date().isoformat()] += 1
    total, growth = 0, []
    for day in sorted(days):
        total += days[day]
        growth.append({"date": day, "records": total})
    result["growth"] = growth
    return result


def _figures(tokens: list[int], calls: list[int], stages: list[int]) -> dict[str, float]:
    def mean(values: list[int]) -> float:
        return round(statistics.fmean(values), 2) if values else 0.0

    def median(values: list[int]) -> float:
        return float(statistics.median(values)) if values else 0.0

    return {"mean_tokens": mean(tokens), "median_tokens": median(tokens),
            "mean_tool_calls": mean(calls), "median_tool_calls": median(calls),
            "mean_stages": mean(stages)}
