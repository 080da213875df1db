"""A tiny OpenAI-compatible server for tests: streams `/v1/chat/completions` as server-sent events.

The answer is `responder(last user message)` ("Answer: " + the message by default), sent a few characters per chunk,
then a usage chunk (one "token" per whitespace-separated word) and `[DONE]`. Model "missing" gets a 404.
Every request's JSON body and Authorization header are kept in `requests`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from support.loopback_server import JSONHandler, LoopbackServer

CHUNK_CHARS = 4


class OpenAIStubServer(LoopbackServer):
    def __init__(self, delay_s: float = 0.0, responder: Callable[[str], str] | None = None) -> None:
        super().__init__(_Handler)
        self.delay_s = delay_s
        self.responder = responder or (lambda prompt: f"Answer: {prompt}")


class _Handler(JSONHandler):
    server: OpenAIStubServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.read_json()
        if self.path != "/v1/chat/completions" or body["model"] == "missing":
            self._send_json(404, {"error": {"message": f"model {body['model']} not found", "type": "not_found"}})
            return
        time.sleep(self.server.delay_s)
        prompt = body["messages"][-1]["content"]
        answer = self.server.responder(prompt)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for start in range(0, len(answer), CHUNK_CHARS):
            self._send_event(
                body["model"],
                [{"index": 0, "delta": {"content": answer[start : start + CHUNK_CHARS]}, "finish_reason": None}],
            )
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(answer.split())}
        self._send_event(body["model"], [], usage={**usage, "total_tokens": sum(usage.values())})
        self.wfile.write(b"data: [DONE]\n\n")

    def _send_event(self, model: str, choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": choices,
            **extra,
        }
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()
