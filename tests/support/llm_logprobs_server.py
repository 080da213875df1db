"""A local OpenAI-compatible `/v1/chat/completions` server for tests that serves a real local model (the bundled
SmolLM2, passed in already loaded) and answers one token with real top logprobs, as vLLM does.

The server applies the model's chat template to `messages` (vLLM's and llama-server's way), runs the model once
and answers its greedy next token; with `logprobs: true` its `choices[0].logprobs.content[0].top_logprobs` are
the `top_logprobs` most likely tokens with `log_softmax` of the last position's float32 logits over the whole
vocabulary (vLLM's default `raw_logprobs`), each token's text being `tokenizer.decode([id])` (as vLLM writes it).
The model is deterministic, so each distinct prompt runs it once (`forwards` counts those runs); a repeated
request is answered from memory.

Knobs for the failure tests: `logprobs=False` answers without logprobs (a server that ignores the parameter),
`refuse_logprobs=True` answers a request for them with a 400 (as the OpenAI API does for models without them),
no `generator` answers "No" without running a model, model "missing" gets a 404, the first `fail_first`
requests a 503 (retried by the client). `delay_s` holds each request before the model runs, so concurrent
requests overlap; `most_at_once` records how many did. The model itself runs one request at a time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch
from support.loopback_server import JSONHandler, LoopbackServer


class LogprobsServer(LoopbackServer):
    def __init__(
        self,
        generator: Any = None,
        logprobs: bool = True,
        refuse_logprobs: bool = False,
        fail_first: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__(_Handler)
        self.generator, self.logprobs, self.refuse_logprobs = generator, logprobs, refuse_logprobs
        self.fail_first, self.delay_s = fail_first, delay_s
        self.lock, self.model_lock = threading.Lock(), threading.Lock()
        self.at_once = self.most_at_once = self.forwards = 0
        self._answers: dict[str, torch.Tensor] = {}

    def next_token_logprobs(self, messages: list[dict[str, str]]) -> torch.Tensor:
        tokenizer = self.generator.tokenizer
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        with self.model_lock, torch.inference_mode():
            if text not in self._answers:
                input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
                self._answers[text] = self.generator.model(input_ids=input_ids).logits[0, -1].float().log_softmax(-1)
                self.forwards += 1
            return self._answers[text]

    def entry(self, token_id: int, logprobs: torch.Tensor) -> dict[str, Any]:
        text = self.generator.tokenizer.decode([token_id])
        return {"token": text, "logprob": float(logprobs[token_id]), "bytes": list(text.encode())}


class _Handler(JSONHandler):
    server: LogprobsServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.read_json()
        served = len(self.server.requests)
        if self.path != "/v1/chat/completions" or body["model"] == "missing":
            self._send_json(404, {"error": {"message": f"model {body['model']} not found", "type": "not_found"}})
            return
        if served <= self.server.fail_first:
            self._send_json(503, {"error": {"message": "overloaded"}})
            return
        if body.get("logprobs") and self.server.refuse_logprobs:
            self._send_json(
                400,
                {
                    "error": {
                        "message": "logprobs are not supported with this model",
                        "type": "invalid_request_error",
                        "param": "logprobs",
                    }
                },
            )
            return
        with self.server.lock:
            self.server.at_once += 1
            self.server.most_at_once = max(self.server.most_at_once, self.server.at_once)
        time.sleep(self.server.delay_s)
        answer = {
            "index": 0,
            "message": {"role": "assistant", "content": "No"},
            "logprobs": None,
            "finish_reason": "length",
        }
        if self.server.generator is not None:
            logprobs = self.server.next_token_logprobs(body["messages"])
            chosen = int(logprobs.argmax())
            answer["message"]["content"] = self.server.generator.tokenizer.decode([chosen])
            if body.get("logprobs") and self.server.logprobs:
                top = logprobs.topk(int(body.get("top_logprobs") or 0)).indices.tolist()
                answer["logprobs"] = {
                    "content": [
                        {
                            **self.server.entry(chosen, logprobs),
                            "top_logprobs": [self.server.entry(i, logprobs) for i in top],
                        }
                    ]
                }
        with self.server.lock:
            self.server.at_once -= 1
        self._send_json(
            200,
            {
                "id": "chatcmpl-logprobs",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [answer],
                "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1},
            },
        )
