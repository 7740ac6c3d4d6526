"""A trajectory in the shapes trainers load, and the rules those loaders check.

A rollout's conversation is not strictly alternating: a model turn with parallel calls gets
one tool result per call, feedback or the next stage's request follows a tool result, and the
last message is the final `submit`'s result. LLaMA-Factory's `sharegpt` and `openai`
converters drop such a record ("Invalid role tag"): after an optional system message, turns
must alternate between the prompt side (`human`/`observation`, `user`/`tool`) and the model
side (`gpt`/`function_call`, `assistant`), with an even count, so the record ends on the model.

:func:`turns` regroups a conversation into such slots without losing a word: consecutive
prompt-side messages become one (tool results first, then the text that followed them), a
model turn's text is kept as its thought before its calls, and the trailing prompt-side slot
(the last tool result, which no model turn answers) is dropped. :func:`check_sharegpt` and
:func:`check_openai` implement the loaders' rules; every exported record passes them.

:func:`line` is a record as one export writes it: shaped, checked and serialised. The corpus
stores these lines when a record is appended (one per :func:`variant`), so an export streams
stored bytes instead of shaping every record again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

SHAPING_VERSION = 1
"""Bump when a change here changes the bytes of an export line or the rules they are checked
by (:func:`check_sharegpt`, :func:`check_openai`): a line is stored only once it passed the
rules, under a variant that names this version, and an export takes only the current
version's lines, so lines stored under an older one are shaped and checked again by the next
export."""
VARIANTS = (("openai", "string"), ("openai", "object"), ("sharegpt", "string"), ("hf", "string"))
"""(format, arguments) of every export line a record can have."""

THOUGHT = ("<think>\n", "\n</think>\n\n")
"""How a model turn's text is kept before its calls in a `function_call` turn: the thought
words LLaMA-Factory's function formatter strips before it parses the calls."""
_THOUGHT = re.compile(r"<think>(.*?)</think>\s*", re.S)


class FormatError(ValueError):
    """A record does not pass a loader's rules; the message says where."""


@dataclass
class Slot:
    """One turn of the regrouped conversation."""

    side: str
    """`prompt` or `model`."""
    text: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    """Tool results (prompt side)."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """{"id", "name", "arguments": object} (model side)."""


def turns(messages: list[dict[str, Any]]) -> tuple[str, list[Slot]]:
    """(system prompt, alternating slots starting on the prompt side and ending on the
    model side)."""
    system = ""
    slots: list[Slot] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content") or ""
        if role == "system" and index == 0:
            system = content
            continue
        side = "model" if role == "assistant" else "prompt"
        if not slots or slots[-1].side != side:
            if not slots and side == "model":
                raise FormatError("the conversation starts with a model turn")
            slots.append(Slot(side))
        slot = slots[-1]
        if role == "tool":
            slot.results.append(content)
        elif role == "assistant":
            if content.strip():
                slot.text.append(content)
            slot.calls += [{"id": c.get("id", ""), "name": c["function"]["name"],
                            "arguments": c["function"].get("arguments")}
                           for c in message.get("tool_calls") or []]
        elif content.strip():
            slot.text.append(content)
    while slots and (slots[-1].side == "prompt" or not (slots[-1].text or slots[-1].calls)):
        slots.pop()
    if not slots:
        raise FormatError("the conversation has no model turn")
    return system, slots


def arguments_object(arguments: Any) -> dict[str, Any]:
    """Arguments as an object, from JSON text or as they are."""
    try:
        parsed = orjson.loads(arguments or "{}") if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise FormatError(f"tool call arguments are not a JSON object: {arguments!r:.80}")
    return parsed


def _text(arguments: Any) -> str:
    """Arguments as JSON text: kept as they are when they already are (checked later)."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments,
                                                                   ensure_ascii=False)


def _prompt_text(slot: Slot) -> str:
    return "\n\n".join([*slot.results, *slot.text])


def sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    """`conversations` of `human`/`observation` and `gpt`/`function_call` turns; a
    `function_call` holds the list of calls (`name`, `arguments` as an object) after the
    turn's text as a thought; `tools` is the JSON text of the function schemas."""
    return _sharegpt(*turns(record["messages"]), record.get("tools", []))


def _sharegpt(system: str, slots: list[Slot], tools: list[Any]) -> dict[str, Any]:
    conversation: list[dict[str, str]] = []
    if system:
        conversation.append({"from": "system", "value": system})
    for slot in slots:
        if slot.side == "prompt":
            tag = "observation" if slot.results else "human"
            conversation.append({"from": tag, "value": _prompt_text(slot)})
        elif slot.calls:
            calls = json.dumps([{"name": c["name"],
                                 "arguments": arguments_object(c["arguments"])}
                                for c in slot.calls], ensure_ascii=False)
            thought = "\n\n".join(slot.text)
            value = f"{THOUGHT[0]}{thought}{THOUGHT[1]}{calls}" if thought else calls
            conversation.append({"from": "function_call", "value": value})
        else:
            conversation.append({"from": "gpt", "value": "\n\n".join(slot.text)})
    functions = [tool.get("function", tool) for tool in tools]
    return {"conversations": conversation, "tools": json.dumps(functions, ensure_ascii=False)}


def openai(record: dict[str, Any], arguments: str = "string") -> dict[str, Any]:
    """`messages` of `user`/`tool` and `assistant` turns, one per slot: an assistant turn
    keeps its text and all its calls; the results of parallel calls are one `tool` message.
    ``arguments``: `string` (OpenAI's JSON text) or `object` (chat templates that iterate
    the arguments, such as Qwen's and Llama's)."""
    return _openai(*turns(record["messages"]), record.get("tools", []), arguments)


def _openai(system: str, slots: list[Slot], tools: list[Any], arguments: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for slot in slots:
        if slot.side == "prompt":
            role = "tool" if slot.results else "user"
            messages.append({"role": role, "content": _prompt_text(slot)})
            continue
        message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(slot.text)}
        if slot.calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {
                    "name": c["name"],
                    "arguments": arguments_object(c["arguments"]) if arguments == "object"
                    else _text(c["arguments"])}}
                for c in slot.calls]
        messages.append(message)
    return {"messages": messages, "tools": tools}


def check_sharegpt(example: dict[str, Any]) -> None:
    """LLaMA-Factory's sharegpt rules: an optional leading `system`; then `human` or
    `observation` at even indexes and `gpt` or `function_call` at odd ones; an even count;
    every `function_call` parses (after its thought) as a call or a list of calls with a
    name and object arguments; `tools` is JSON text of a list."""
    conversation = example.get("conversations")
    if not isinstance(conversation, list):
        raise FormatError("`conversations` is not a list")
    if conversation and conversation[0].get("from") == "system":
        conversation = conversation[1:]
    _alternate([t.get("from") for t in conversation], ("human", "observation"),
               ("gpt", "function_call"))
    for index, turn in enumerate(conversation):
        value = turn.get("value")
        if not isinstance(value, str) or not value.strip():
            raise FormatError(f"turn {index} ({turn.get('from')}) is empty")
        if turn["from"] == "function_call":
            _check_calls(_THOUGHT.sub("", value, count=1), index)
    tools = json.loads(example.get("tools") or "[]")
    if not isinstance(tools, list) or not all(isinstance(t, dict) and "name" in t
                                              for t in tools):
        raise FormatError("`tools` is not JSON text of a list of functions")


def check_openai(example: dict[str, Any]) -> None:
    """The same rules in OpenAI roles: `user` or `tool` at even indexes after the optional
    system message, `assistant` at odd ones, an even count; an assistant turn has text or
    calls, and every call names a function and carries object arguments."""
    messages = example.get("messages")
    if not isinstance(messages, list):
        raise FormatError("`messages` is not a list")
    if messages and messages[0].get("role") == "system":
        messages = messages[1:]
    _alternate([m.get("role") for m in messages], ("user", "tool"), ("assistant",))
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        if not (message.get("content") or "").strip() and not calls:
            raise FormatError(f"message {index} ({message.get('role')}) is empty")
        for call in calls:
            function = call.get("function") or {}
            try:
                parsed = arguments_object(function.get("arguments"))
            except FormatError:
                parsed = None
            if not function.get("name") or not isinstance(parsed, dict):
                raise FormatError(f"message {index}: a call without a name or object "
                                  "arguments")


def _alternate(roles: list[Any], prompt: tuple[str, ...], model: tuple[str, ...]) -> None:
    for index, role in enumerate(roles):
        wanted = prompt if index % 2 == 0 else model
        if role not in wanted:
            raise FormatError(f"turn {index} is {role!r} where {' or '.join(wanted)} must be")
    if len(roles) % 2:
        raise FormatError(f"{len(roles)} turns: the count must be even (end on the model)")


def _check_calls(text: str, index: int) -> None:
    try:
        calls = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"turn {index}: function_call is not JSON ({exc})") from None
    for call in calls if isinstance(calls, list) else [calls]:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("arguments"), dict):
            raise FormatError(f"turn {index}: a call without a name or object arguments")


def variant(fmt: str, arguments: str = "string") -> str:
    """The name a record's export line is stored under: only `openai` has two arguments
    settings (the hf rows hold arguments as JSON text)."""
    return f"{fmt}-{arguments if fmt == 'openai' else 'string'}-v{SHAPING_VERSION}"


def line(fmt: str, record: dict[str, Any], arguments: str = "string") -> bytes:
    """The bytes an export of ``fmt`` writes for ``record``, checked first (see
    :func:`lines`)."""
    return lines(record, ((fmt, arguments),))[variant(fmt, arguments)]


def lines(record: dict[str, Any],
          wanted: tuple[tuple[str, str], ...] = VARIANTS) -> dict[str, bytes]:
    """``record``'s export lines by :func:`variant`, each shaped and checked against its
    loader's rules first: a JSON line, or for `hf` the record's Parquet row as an Arrow IPC
    stream (`corpus.hf.encoded_row`) from the checked openai shape. The conversation is
    regrouped once for all of them. Raises FormatError (or the JSON, key and type errors of
    a malformed record)."""
    system, slots = turns(record["messages"])
    tools = record.get("tools", [])
    checked: dict[tuple[str, str], dict[str, Any]] = {}

    def example(shape: str, arguments: str) -> dict[str, Any]:
        if (shape, arguments) not in checked:
            if shape == "sharegpt":
                shaped = _sharegpt(system, slots, tools)
                check_sharegpt(shaped)
            else:
                shaped = _openai(system, slots, tools, arguments)
                check_openai(shaped)
            checked[(shape, arguments)] = shaped
        return checked[(shape, arguments)]

    encoded: dict[str, bytes] = {}
    for fmt, arguments in wanted:
        if fmt == "hf":
            from corpus import hf  # pyarrow is loaded for this format only

            encoded[variant(fmt)] = hf.encoded_row(record, example("openai", "string"))
        else:
            shape = example(fmt, arguments if fmt == "openai" else "string")
            encoded[variant(fmt, arguments)] = orjson.dumps(shape) + b"\n"
    return encoded
