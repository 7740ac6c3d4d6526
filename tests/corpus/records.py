"""Trajectory records shaped like the rollouts produce them, sized on demand."""

from __future__ import annotations

import json
import random
from typing import Any

TOOLS = [{"type": "function", "function": {
    "name": name, "description": f"{name} in the work tree",
    "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}}}}
    for name in ("bash", "read_file", "write_file", "str_replace", "submit")]


def make_record(seed: int, tool_calls: int = 6, observation_chars: int = 400,
                repository: str = "textkit-dev/textkit", policy: str = "replay",
                stages: int = 2, merged: tuple[str, ...] = ()) -> dict[str, Any]:
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a software engineer working in a sandbox."},
        {"role": "user", "content": f"Objective: keep slugs tidy ({seed}).\n\n"
                                    "Request 1 of 2:\nCut long slugs."}]
    per_stage = max(1, tool_calls // stages)
    call = 0
    for stage in range(stages):
        if stage:
            messages.append({"role": "user", "content": f"Request {stage + 1} of {stages}:\n"
                                                        "Fix the trailing dash."})
        for _ in range(per_stage):
            call += 1
            call_id = f"call_{seed}_{call}"
            messages.append({"role": "assistant", "content": f"Step {call}: look around.",
                             "tool_calls": [{"id": call_id, "type": "function", "function": {
                                 "name": rng.choice(["bash", "read_file"]),
                                 "arguments": json.dumps({"arg": f"cat file_{call}.py"})}}]})
            text = "".join(rng.choice("abcdefgh \n") for _ in range(observation_chars))
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        messages.append({"role": "assistant", "content": "Done with this request."})
    return {
        "schema_version": 1, "repository": repository,
        "chain": {"id": f"1-1-{seed:010d}", "prs": [1, 2], "kinds": ["references"]},
        "base_commit": f"{seed:040x}", "objective": "keep slugs tidy",
        "stages": [{"pr": n + 1, "instruction": "do it", "verdict": "passed", "score": 1.0,
                    "attempts": 1, **({"merged_at": merged[n]} if merged else {})}
                   for n in range(stages)],
        "messages": messages, "tools": TOOLS, "policy": policy, "model": None,
        "score": 0.9 + (seed % 10) / 100, "tokens": len(json.dumps(messages)) // 4,
        "tool_calls": call, "created_at": "2026-11-24T12:00:00+00:00",
    }
