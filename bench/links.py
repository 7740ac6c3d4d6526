"""Link precision against links judged by hand: which judged links mining still makes.

`tests/data/link-labels.json` holds links of real repositories judged by reading both PRs
(`correct`, `plausible` or `wrong`, with the failure class of wrong ones). This mines each
clone afresh with the current code and prints, per kind: the judged links it still makes,
precision among those (correct / kept, and counting plausible ones), how many of the correct
links are kept (the baseline is the mining that made them: all of them), and the wrong links
that remain.

    python3 bench/links.py --git python-attrs/attrs=CLONE --git pytest-dev/pytest-mock=CLONE \
        --git tox-dev/filelock=CLONE --git pytest-dev/pluggy=CLONE \
        --git python-humanize/humanize=CLONE --git hynek/structlog=CLONE
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "link-labels.json"


def mined_links(clone: Path) -> set[tuple[int, int, str]]:
    with tempfile.TemporaryDirectory(prefix="davinci-links-") as data:
        env = {**os.environ, "DAVINCI_DATA_DIR": data, "DAVINCI_LOG_LEVEL": "warning"}
        env.pop("DATABASE_URL", None)
        done = subprocess.run([sys.executable, "-m", "bot", "mine", "--git", str(clone),
                               "--json"], capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"mining {clone} failed:\n{done.stderr[-2000:]}")
        return {(k["from"], k["to"], k["kind"]) for k in json.loads(done.stdout)["links"]}


def report(labels: list[dict[str, Any]], kept: set[tuple[str, int, int, str]]) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for label in labels:
        by_kind[label["kind"]].append(label)
    for kind, judged in sorted(by_kind.items()):
        still = [j for j in judged if (j["repository"], j["earlier"], j["later"], kind) in kept]
        verdicts = Counter(j["verdict"] for j in still)
        correct = [j for j in judged if j["verdict"] == "correct"]
        correct_kept = sum(1 for j in still if j["verdict"] == "correct")
        precision = verdicts["correct"] / len(still) if still else 0.0
        lenient = (verdicts["correct"] + verdicts["plausible"]) / len(still) if still else 0.0
        before = Counter(j["verdict"] for j in judged)
        print(f"{kind:<13} judged {len(judged):>3} (correct {before['correct']}, plausible "
              f"{before['plausible']}, wrong {before['wrong']}); kept {len(still):>3}: "
              f"precision {precision:.0%} ({lenient:.0%} with plausible), "
              f"correct kept {correct_kept}/{len(correct)} "
              f"({correct_kept / len(correct) if correct else 1:.0%})")
        for j in still:
            if j["verdict"] == "wrong":
                print(f"    still wrong: {j['repository']} #{j['earlier']} -> #{j['later']} "
                      f"({j['class']}): {j['reason'][:110]}")
        for j in correct:
            if j not in still:
                print(f"    correct, lost: {j['repository']} #{j['earlier']} -> "
                      f"#{j['later']}: {j['reason'][:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--git", action="append", required=True, metavar="OWNER/NAME=CLONE",
                        help="A clone of a labelled repository (repeat for each).")
    parser.add_argument("--labels", type=Path, action="append",
                        help=f"A file of judged links (repeat; default {LABELS.name}).")
    args = parser.parse_args()
    labels = [label for path in (args.labels or [LABELS])
              for label in json.loads(path.read_text())]
    kept: set[tuple[str, int, int, str]] = set()
    measured = []
    for item in args.git:
        name, _, clone = item.partition("=")
        measured.append(name)
        kept |= {(name, a, b, kind) for a, b, kind in mined_links(Path(clone))}
    report([label for label in labels if label["repository"] in measured], kept)


if __name__ == "__main__":
    main()
