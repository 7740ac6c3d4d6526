"""A local OpenAI-compatible chat-completions server with scripted turns, over real HTTP.

Each request takes the next scripted entry: an assistant turn (content, tool calls, usage) or
an HTTP error. A responder may compute the answer from the request instead. Every request
body is recorded so tests can assert on what the client sent.

With ``max_model_len`` it behaves like vLLM: `/v1/models` names the window, prompts are
counted (four characters a token), a prompt whose tokens plus `max_tokens` pass the window is
refused with vLLM's message, tool-call arguments in the history must be JSON objects, and
`usage` reports the counted prompt.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], dict[str, Any]]


class LLMSim:
    def __init__(self, model: str = "sim-model", max_model_len: int | None = None) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.largest_prompt = 0
        """The most tokens any accepted request's prompt had (vLLM mode)."""
        self.refused: list[str] = []
        """The messages of the requests refused in vLLM mode."""
        self.script: deque[tuple[int, dict[str, Any]]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.responder: Responder | None = None
        self._counter = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> LLMSim:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply(self, content: str | None = None, tool_calls: list[tuple[str, Any]] | None = None,
              prompt_tokens: int = 100, completion_tokens: int = 20,
              finish_reason: str | None = None, reasoning: str | None = None) -> None:
        """Script one assistant turn; tool call arguments that are not str are JSON-encoded.
        In vLLM mode the prompt's tokens are counted instead of ``prompt_tokens``."""
        self.script.append((200, self.completion(content, tool_calls, prompt_tokens,
                                                 completion_tokens, finish_reason, reasoning)))

    def completion(self, content: str | None = None,
                   tool_calls: list[tuple[str, Any]] | None = None, prompt_tokens: int = 100,
                   completion_tokens: int = 20, finish_reason: str | None = None,
                   reasoning: str | None = None) -> dict[str, Any]:
        """A chat.completion body, as a responder returns it."""
        calls = []
        for name, args in tool_calls or []:
            self._counter += 1
            calls.append({"id": f"call_{self._counter}", "type": "function", "function": {
                "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}})
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        return {
            "id": f"chatcmpl-{self._counter}", "object": "chat.completion", "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": finish_reason or ("tool_calls" if calls else "stop")}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}

    def fail(self, status: int, times: int = 1) -> None:
        for _ in range(times):
            self.script.append((status, {"error": {"message": f"simulated {status}",
                                                   "type": "server_error", "code": status}}))

    @staticmethod
    def count(body: dict[str, Any]) -> int:
        """The sim's tokenizer: four characters of the messages and tools a token."""
        return len(json.dumps([body.get("messages"), body.get("tools")])) // 4

    def _refusal(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """What vLLM would refuse in this request, as its error body."""
        for message in body.get("messages", []):
            for call in message.get("tool_calls") or []:
                try:
                    parsed = json.loads(call["function"]["arguments"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    return _bad_request(f"tool call arguments in the history are not JSON: {exc}")
                if not isinstance(parsed, dict):
                    return _bad_request("tool call arguments in the history are not an object")
        prompt, wanted = self.count(body), int(body.get("max_tokens") or 0)
        if self.max_model_len is not None and prompt + wanted > self.max_model_len:
            return _bad_request(
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"you requested {prompt + wanted} tokens ({prompt} in the messages, {wanted} in "
                "the completion). Please reduce the length of the messages or completion.")
        self.largest_prompt = max(self.largest_prompt, prompt)
        return None

    def _next(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            if self.max_model_len is not None:
                refused = self._refusal(body)
                if refused is not None:
                    self.refused.append(refused["message"])
                    return 400, refused
            if self.script:
                status, payload = self.script.popleft()
            elif self.responder is not None:
                status, payload = 200, self.responder(body)
            else:
                return 400, {"error": {"message": "the script is exhausted",
                                       "type": "invalid_request"}}
        if self.max_model_len is not None and status == 200:
            usage = dict(payload["usage"], prompt_tokens=self.count(body))
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            payload = {**payload, "usage": usage}
        return status, payload

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                entry: dict[str, Any] = {"id": sim.model, "object": "model", "owned_by": "sim"}
                if sim.max_model_len is not None:
                    entry["max_model_len"] = sim.max_model_len
                self._send(200, {"object": "list", "data": [entry]})

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                status, payload = sim._next(body)
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                if status >= 500 or status == 429:
                    self.send_header("retry-after-ms", "10")  # the SDK's back-off, kept short
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def _bad_request(message: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None,
            "code": 400}
