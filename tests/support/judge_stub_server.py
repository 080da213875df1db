"""A tiny OpenAI-compatible judge for tests: answers ragas' prompts with canned JSON.

`POST /v1/chat/completions` (non-streaming, or server-sent events when the body says `"stream": true`).
The reply is chosen by the ragas prompt's instruction found in the last user message, and computed from the
prompt's JSON input (the text between the last "input: " and "Output: "):

- Faithfulness, statement generation ("Break down each sentence"): the answer split at ". " into statements.
- Faithfulness, NLI ("judge the faithfulness of a series of statements"): verdict 0 for a statement that
  contains `unfaithful_word` ("cheese"), else 1.
- LLMContextPrecisionWithReference ("verify if the context was useful"): verdict 1 when the context
  contains `useful_word` ("Paris"), else 0.
- ResponseRelevancy ("Generate a question for the given answer"): `{"question": generated_question,
  "noncommittal": 0}`.

`mode="garbage"` answers every request with text that is not JSON. `n` choices are returned when asked.
Every request body is kept in `requests` (with its Authorization header).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from support.loopback_server import JSONHandler, LoopbackServer

GARBAGE = "I am sorry, I cannot produce structured output today. No braces here."


class JudgeStubServer(LoopbackServer):
    def __init__(
        self,
        mode: str = "valid",
        generated_question: str = "What is the capital of France?",
        unfaithful_word: str = "cheese",
        useful_word: str = "Paris",
        delay_s: float = 0.0,
    ) -> None:
        super().__init__(_Handler)
        self.mode = mode
        self.generated_question = generated_question
        self.unfaithful_word = unfaithful_word
        self.useful_word = useful_word
        self.delay_s = delay_s

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test) closes the socket: not worth a traceback."""
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    # --- canned replies -------------------------------------------------------------------------------
    def reply_for(self, prompt: str) -> str:
        if self.mode == "garbage":
            return GARBAGE
        data = _prompt_input(prompt)
        if "Break down each sentence" in prompt:
            answer = str(data.get("answer", ""))
            statements = [s.strip().rstrip(".") + "." for s in answer.split(". ") if s.strip(" .")]
            return json.dumps({"statements": statements})
        if "judge the faithfulness of a series of statements" in prompt:
            verdicts = [
                {"statement": s, "reason": "canned", "verdict": 0 if self.unfaithful_word.lower() in s.lower() else 1}
                for s in data.get("statements", [])
            ]
            return json.dumps({"statements": verdicts})
        if "verify if the context was useful" in prompt:
            useful = self.useful_word.lower() in str(data.get("context", "")).lower()
            return json.dumps({"reason": "canned", "verdict": 1 if useful else 0})
        if "Generate a question for the given answer" in prompt:
            return json.dumps({"question": self.generated_question, "noncommittal": 0})
        return json.dumps({"text": "unrecognised prompt"})


def _prompt_input(prompt: str) -> dict[str, Any]:
    """The JSON input ragas appends after its examples: '...input: {...}\nOutput: '."""
    start = prompt.rfind("\ninput: ")
    end = prompt.rfind("\nOutput: ")
    if start == -1 or end <= start:
        return {}
    try:
        data = json.loads(prompt[start + len("\ninput: ") : end])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


class _Handler(JSONHandler):
    server: JudgeStubServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.read_json()
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        time.sleep(self.server.delay_s)
        user = [m for m in body.get("messages", []) if m.get("role") == "user"]
        prompt = _content_text(user[-1]["content"]) if user else ""
        text = self.server.reply_for(prompt)
        n = int(body.get("n") or 1)
        model = body.get("model", "stub")
        if body.get("stream"):
            self._stream(model, text, n)
            return
        choices = [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} for i in range(n)
        ]
        tokens = len(re.findall(r"\S+", text))
        self._send_json(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": tokens,
                    "total_tokens": len(prompt.split()) + tokens,
                },
            },
        )

    def _stream(self, model: str, text: str, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(n):
            for start in range(0, len(text), 16):
                self._event(
                    model, [{"index": i, "delta": {"content": text[start : start + 16]}, "finish_reason": None}]
                )
            self._event(model, [{"index": i, "delta": {}, "finish_reason": "stop"}])
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, model: str, choices: list[dict[str, Any]]) -> None:
        chunk = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
        }
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
