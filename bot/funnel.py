"""The funnel: how many chains survive each step, and why the others did not.

chains mined (two or more PRs) -> environment built -> eligible after gold validation ->
accepted. Computed from the verdicts `bot.pipeline.roll_out_chain` returns, so the report says
exactly what the rollouts said. The dashboard's funnel of a repository puts mining's verdict and
the chains' states (`rollout.state`) in front: mined -> eligible (mining) -> rolled out -> …,
so chains that were not eligible or whose rollout failed count against the acceptance rate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chains.store import ChainRow
from rollout.state import ChainState
from rollout.store import ENDED

ENVIRONMENT_FAILURE = "the environment could not be built"
TOP = 5


@dataclass(frozen=True)
class Step:
    name: str
    count: int
    lost: dict[str, int] = field(default_factory=dict)
    """Why chains did not reach this step from the one before: reason -> chains."""


@dataclass(frozen=True)
class Funnel:
    steps: tuple[Step, ...]
    seconds: dict[str, float]
    """Wall seconds per phase: mining, rollouts."""
    environments_built: int
    environments_reused: int

    @property
    def reuse_rate(self) -> float:
        total = self.environments_built + self.environments_reused
        return self.environments_reused / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["reuse_rate"] = round(self.reuse_rate, 3)
        return document


def funnel(verdicts: Sequence[dict[str, Any]], seconds: dict[str, float],
           environments_built: int = 0) -> Funnel:
    """The funnel of ``verdicts`` (one per chain rolled out)."""
    built = [v for v in verdicts if not str(v.get("reason", "")).startswith(ENVIRONMENT_FAILURE)]
    eligible = [v for v in built if v.get("eligible", True)]
    accepted = [v for v in eligible if v.get("accepted")]
    steps = (Step("chains", len(verdicts)),
             Step("environment built", len(built), _reasons(v for v in verdicts
                                                            if v not in built)),
             Step("eligible", len(eligible), _reasons(v for v in built if v not in eligible)),
             Step("accepted", len(accepted), _reasons(v for v in eligible if v not in accepted)))
    with_environment = len(built)
    return Funnel(steps, {k: round(v, 1) for k, v in seconds.items()}, environments_built,
                  max(0, with_environment - environments_built))


@dataclass(frozen=True)
class RepositoryFunnel:
    repository: str
    steps: tuple[Step, ...]

    @property
    def acceptance_rate(self) -> float:
        """Accepted of the chains rolled out: not eligible and failed rollouts count too."""
        rolled_out = self.steps[2].count
        return self.steps[-1].count / rolled_out if rolled_out else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "acceptance_rate": round(self.acceptance_rate, 3)}


def repository_funnel(repository: str, chains: Sequence[ChainRow],
                      states: Mapping[str, ChainState]) -> RepositoryFunnel:
    """The funnel of one repository's ``chains`` (two or more PRs), from their states."""
    eligible = [chain for chain in chains if chain.eligible]
    ended = [states[chain.id] for chain in chains if _rolled_out(states[chain.id])]
    waiting = Counter(states[chain.id].name if states[chain.id].live else "not rolled out yet"
                      for chain in eligible if not _rolled_out(states[chain.id]))
    unready = len(chains) - len(eligible)
    rolled = funnel([{"reason": state.reason, "eligible": state.name in ("accepted", "rejected"),
                      "accepted": state.name == "accepted"} for state in ended], {})
    return RepositoryFunnel(repository, (
        Step("chains mined", len(chains)),
        Step("eligible (mining)", len(eligible),
             {"not eligible by mining": unready} if unready else {}),
        Step("rolled out", len(ended), dict(waiting.most_common(TOP))),
        *rolled.steps[1:]))


def _rolled_out(state: ChainState) -> bool:
    """A run of the chain ended (mining's own "not eligible" has no run)."""
    return state.run_id is not None and state.name in ENDED


def _reasons(verdicts: Any) -> dict[str, int]:
    counts = Counter(reason_kind(str(v.get("reason", "") or "no reason given")) for v in verdicts)
    return dict(counts.most_common(TOP))


def reason_kind(reason: str) -> str:
    """A reason without what is particular to one chain (PR numbers, paths, output); a
    validation's reason keeps the kind of its first stage's reason ("no verifiable stage:
    tests do not run")."""
    first = reason.split("\n", 1)[0]
    head, _, inner = first.partition(" (")
    kind = _kind(head)
    if kind.startswith("only N of N stages verifiable"):
        kind = "too few stages verifiable"
    if inner and re.match(r"(no verifiable stage|too few stages verifiable)", kind):
        return f"{kind}: {_kind(inner.split(';')[0])}"[:100]
    return kind or reason[:100]


def _kind(text: str) -> str:
    text = re.sub(r"PR #\d+: ", "", text)
    text = re.sub(r"#\d+", "#N", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
    return re.sub(r"\(.*", "", text).split(": ", 1)[0].strip(" :;()")[:100]


def render(repository: str, report: Funnel) -> str:
    """The funnel as the terminal shows it."""
    lines = [f"\nFunnel of {repository}:"]
    previous = None
    for step in report.steps:
        share = f" ({step.count / previous:.0%})" if previous else ""
        lines.append(f"  {step.name:<18} {step.count:>5}{share}")
        lines += [f"      lost {count:>4}: {reason}" for reason, count in step.lost.items()]
        previous = step.count or None
    lines.append(f"time: mining {report.seconds.get('mining', 0):.1f}s, rollouts "
                 f"{report.seconds.get('rollouts', 0):.1f}s; environment images built "
                 f"{report.environments_built}, reused {report.environments_reused} "
                 f"({report.reuse_rate:.0%})")
    return "\n".join(lines)
