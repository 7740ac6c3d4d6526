"""The trajectory record: its schema checks and the redaction of secrets, applied at append."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from corpus.formats import FormatError, arguments_object

SCHEMA_VERSION = 1
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "repository": str, "chain": dict, "base_commit": str,
    "objective": str, "stages": list, "messages": list, "tools": list, "policy": str,
    "score": (int, float), "tokens": int, "tool_calls": int}
REDACTED = "[redacted secret]"
# One alternation, so each string is scanned once (appends of 100k-token trajectories).
SECRETS = re.compile("|".join((
    r"(?s:-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z))",
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
    r"(?i:\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*)",
    r"(?P<keep>(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?)"
    r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
    r"\bhf_[A-Za-z0-9]{30,}\b",
    r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b",
    r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"\bglpat-[A-Za-z0-9_-]{20,}\b",
    r"\bnpm_[A-Za-z0-9]{36}\b",
    r"(?<=://)[^\s/:@\"'<>]+:[^\s/@\"'<>]+(?=@)",
)))
"""Shapes of secrets: private key blocks; GitHub, OpenAI, AWS (key ids and secret keys after
their name), Slack, Hugging Face, Stripe, Google API, GitLab and npm tokens; bearer tokens;
JWTs; and the `user:password` of a URL."""


class InvalidRecord(ValueError):
    """The record breaks the schema; the message says where."""


class ExcludedRepository(ValueError):
    """The repository must stay out of training data (for example a benchmark)."""


def record_id(record: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything but `id` and `created_at`."""
    body = {k: v for k, v in record.items() if k not in ("id", "created_at")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Every secret shape contains one of these; a string with none of them is left unscanned.
_ANCHORS = ("PRIVATE KEY", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "sk-", "AKIA",
            "ASIA", "xox", "earer", "EARER", "ecret", "ECRET", "hf_", "_live_", "_test_",
            "AIza", "eyJ", "glpat-", "npm_", "://")


def redact(text: str) -> str:
    if not any(anchor in text for anchor in _ANCHORS):
        return text
    return SECRETS.sub(lambda found: (found.group("keep") or "") + REDACTED, text)


def repaired(record: dict[str, Any]) -> dict[str, Any]:
    """A copy without what can be fixed instead of refused: empty assistant turns (no text,
    no call) teach nothing and are dropped."""
    messages = record.get("messages")
    if not isinstance(messages, list):
        return record
    kept = [m for m in messages if not (
        isinstance(m, dict) and m.get("role") == "assistant" and not m.get("tool_calls")
        and not (m.get("content") or "").strip())]
    return record if len(kept) == len(messages) else {**record, "messages": kept}


def redacted(record: dict[str, Any]) -> dict[str, Any]:
    """A copy with secret-shaped strings scrubbed from every message and the objective."""
    clean = dict(record)
    clean["messages"] = [_redacted_message(m) if isinstance(m, dict) else m
                         for m in record.get("messages", [])]
    clean["objective"] = redact(record.get("objective", ""))
    clean["stages"] = [{**s, "instruction": redact(s["instruction"])}
                       if isinstance(s, dict) and isinstance(s.get("instruction"), str) else s
                       for s in record.get("stages", [])]
    return clean


def _redacted_message(message: dict[str, Any]) -> dict[str, Any]:
    """A copy only where something changes; the caller's record is never modified."""
    content = message.get("content")
    calls = message.get("tool_calls")
    clean = dict(message)
    if isinstance(content, str):
        clean["content"] = redact(content)
    if isinstance(calls, list):
        clean["tool_calls"] = [_redacted_call(c) for c in calls]
    return clean


def _redacted_call(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    arguments = redact(function["arguments"])
    if arguments == function["arguments"]:
        return call
    return {**call, "function": {**function, "arguments": arguments}}


def validate(record: dict[str, Any]) -> None:
    """Raise InvalidRecord unless the record is a well-formed trajectory."""
    for key, kind in REQUIRED.items():
        if key not in record:
            raise InvalidRecord(f"`{key}` is missing")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise InvalidRecord(f"`{key}` has the wrong type ({type(record[key]).__name__})")
    if record["schema_version"] != SCHEMA_VERSION:
        raise InvalidRecord(f"schema_version {record['schema_version']} is not "
                            f"{SCHEMA_VERSION}")
    chain = record["chain"]
    if not isinstance(chain.get("prs"), list) or not all(isinstance(n, int)
                                                          for n in chain["prs"]):
        raise InvalidRecord("`chain.prs` must be a list of PR numbers")
    _check_tools(record["tools"])
    _check_messages(record["messages"])


def _check_tools(tools: list[Any]) -> None:
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict) \
                or not isinstance(function.get("name"), str):
            raise InvalidRecord(f"tools[{index}] is not an OpenAI function tool")


def _check_messages(messages: list[Any]) -> None:
    if not messages or not isinstance(messages[0], dict):
        raise InvalidRecord("there are no messages")
    pending: dict[str, int] = {}
    previous = None
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        where = f"messages[{index}]"
        if role not in ("system", "user", "assistant", "tool"):
            raise InvalidRecord(f"{where} has no valid role")
        if role == "system" and index != 0:
            raise InvalidRecord(f"{where}: a system message may only come first")
        if role in ("user", "system") and pending:
            raise InvalidRecord(f"{where}: tool calls {sorted(pending)} have no result")
        if role == "assistant":
            if pending:
                raise InvalidRecord(f"{where}: tool calls {sorted(pending)} have no result")
            if previous not in ("user", "tool"):
                raise InvalidRecord(f"{where}: an assistant turn must follow a user or tool "
                                    "message")
            calls = message.get("tool_calls") or []
            if not (message.get("content") or "").strip() and not calls:
                raise InvalidRecord(f"{where}: empty assistant turn")
            for call in calls:
                arguments = call.get("function", {}).get("arguments")
                if not isinstance(call.get("id"), str) or not isinstance(arguments, str):
                    raise InvalidRecord(f"{where}: a tool call needs an id and JSON arguments")
                try:
                    arguments_object(arguments)
                except FormatError as exc:
                    raise InvalidRecord(f"{where}: {exc}") from None
                pending[call["id"]] = index
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise InvalidRecord(f"{where}: result for unknown tool call {call_id!r}")
            del pending[call_id]
            if not isinstance(message.get("content"), str):
                raise InvalidRecord(f"{where}: a tool result needs text content")
        if role == "user" and not isinstance(message.get("content"), str):
            raise InvalidRecord(f"{where}: a user message needs text content")
        previous = role
    if pending:
        raise InvalidRecord(f"tool calls {sorted(pending)} have no result")
