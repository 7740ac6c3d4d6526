"""`davinci rollout --git PATH --chain ID --json` on a mined sample repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.sample import build_sample_repository


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_rollout_verdict_document(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    mined = json.loads(run("mine", "--git", str(sample.path), "--json", env=env).stdout)
    chain = next(c for c in mined["chains"] if c["prs"] == [1, 2, 4])
    result = run("rollout", "--git", str(sample.path), "--chain", chain["id"][:8], "--json",
                 env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    verdict = json.loads(result.stdout)
    assert verdict["accepted"] is True and verdict["score"] == 1.0
    assert verdict["policy"] == "replay"
    assert [s["pr"] for s in verdict["stages"]] == [1, 2, 4]
    assert all(s["verdict"] == "passed" and s["attempts"] == 1 for s in verdict["stages"])
    assert isinstance(verdict["tool_calls"], int) and verdict["tool_calls"] > 0
    assert isinstance(verdict["tokens"], int) and verdict["tokens"] > 0
    stats = json.loads(run("corpus", "stats", "--json", env=env).stdout)
    assert stats["records"] == 1
    missing = run("rollout", "--git", str(sample.path), "--chain", "nope", env=env)
    assert missing.returncode != 0 and "no chain 'nope'" in missing.stderr
    bad = run("rollout", "--git", str(sample.path), "--chain", chain["id"], "--threshold", "3",
              env=env)
    assert bad.returncode != 0 and "--threshold" in bad.stderr and "from 0 to 1" in bad.stderr
    capped = run("rollout", "--git", str(sample.path), "--chain", chain["id"], "--max-steps",
                 "2", "--json", env=env)
    assert capped.returncode == 0, capped.stderr[-2000:]
    capped_verdict = json.loads(capped.stdout)
    assert capped_verdict["exit_status"] == "budget_exceeded" and capped_verdict["steps"] == 2
    llm = run("rollout", "--git", str(sample.path), "--chain", chain["id"], "--policy", "llm",
              env=env)
    assert llm.returncode != 0 and "LLM_BASE_URL" in llm.stderr
