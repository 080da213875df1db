"""A tiny OpenAI-compatible server for tests: streams `/v1/chat/completions` as server-sent events.

The answer is "Answer: " + the last user message, sent a few characters per chunk, then a usage chunk
(one "token" per whitespace-separated word) and `[DONE]`. Model "missing" gets a 404. Every request's JSON
body and Authorization header are kept in `requests`.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK_CHARS = 4


class OpenAIStubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # ragas and parallel sweeps open many connections at once

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIStubServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
        if self.path != "/v1/chat/completions" or body["model"] == "missing":
            self._send_json(404, {"error": {"message": f"model {body['model']} not found", "type": "not_found"}})
            return
        time.sleep(self.server.delay_s)
        prompt = body["messages"][-1]["content"]
        answer = f"Answer: {prompt}"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for start in range(0, len(answer), CHUNK_CHARS):
            self._send_event(body["model"], [{"index": 0, "delta": {"content": answer[start:start + CHUNK_CHARS]},
                                              "finish_reason": None}])
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(answer.split())}
        self._send_event(body["model"], [], usage={**usage, "total_tokens": sum(usage.values())})
        self.wfile.write(b"data: [DONE]\n\n")

    def _send_event(self, model: str, choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": choices, **extra}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
