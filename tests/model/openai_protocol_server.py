"""A protocol-level OpenAI-compatible TEST server that returns real logprobs from a real model.

This is NOT vLLM and not a product component. It exists because `transformers serve` (the real
OpenAI-compatible server used elsewhere in the tests) ignores `logprobs` / `top_logprobs`,
while the openai backend reads its scores from them, as it would from vLLM.

It loads a Hugging Face image-text-to-text model (the tiny offline ones from `model.tiny`) with
`AutoModelForImageTextToText` / `AutoProcessor`, turns an OpenAI chat request into the same
chat-template text + images the transformers backend builds, runs one forward pass, and answers
in the OpenAI `chat.completion` shape:
- `logprobs: true, top_logprobs: K` -> `choices[0].logprobs.content[0].top_logprobs` with the
  K most likely next tokens and their real log-probabilities (K is not capped at 20: like
  vLLM's `--max-logprobs`, a test may ask for the whole vocabulary);
- otherwise greedy generation of up to `max_tokens` tokens.
`fail_first=N` answers the first N requests with HTTP 503, to exercise client retries.

Run: python tests/model/openai_protocol_server.py MODEL_DIR --port 8011
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ProtocolModel:
    """The model behind the server; one request at a time (a lock), fp32 on CPU."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        self.tokenizer = self.processor.tokenizer
        self.name = str(model_dir)
        self.lock = threading.Lock()

    def _inputs(self, messages: list[dict[str, Any]]) -> Any:
        from PIL import Image

        hf_messages: list[dict[str, Any]] = []
        images: list[Any] = []
        for m in messages:
            content = m["content"]
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            parts: list[dict[str, Any]] = []
            for p in content:
                if p["type"] == "text":
                    parts.append({"type": "text", "text": p["text"]})
                elif p["type"] == "image_url":
                    url = (
                        p["image_url"]["url"]
                        if isinstance(p["image_url"], dict)
                        else p["image_url"]
                    )
                    _, _, b64 = url.partition("base64,")
                    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
                        images.append(im.convert("RGB"))
                    parts.append({"type": "image"})
                else:
                    raise ValueError(f"unsupported content part {p['type']!r}")
            hf_messages.append({"role": m["role"], "content": parts})
        text = self.processor.apply_chat_template(
            hf_messages, add_generation_prompt=True, tokenize=False
        )
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = [images]
        return self.processor(**kwargs)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        want_logprobs = bool(body.get("logprobs"))
        k = int(body.get("top_logprobs") or 0)
        with self.lock, torch.no_grad():
            enc = self._inputs(body["messages"])
            prompt_len = int(enc["input_ids"].shape[1])
            logprobs_block = None
            if want_logprobs:
                logits = self.model(**enc).logits[0, -1].float()  # [V]
                logp = torch.log_softmax(logits, dim=-1)
                top = torch.topk(logp, k=max(1, min(k or 1, logp.shape[0])))
                chosen = int(top.indices[0])
                entries = [
                    {
                        "token": self.tokenizer.decode([int(i)]),
                        "logprob": float(v),
                        "bytes": list(self.tokenizer.decode([int(i)]).encode()),
                    }
                    for v, i in zip(top.values, top.indices, strict=True)
                ]
                logprobs_block = {
                    "content": [
                        {
                            "token": entries[0]["token"],
                            "logprob": entries[0]["logprob"],
                            "bytes": entries[0]["bytes"],
                            "top_logprobs": entries if k else [],
                        }
                    ]
                }
                generated = [chosen]
                if max_tokens > 1:
                    out = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
                    generated = out[0, prompt_len:].tolist()
            else:
                out = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
                generated = out[0, prompt_len:].tolist()
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs_block,
                    "finish_reason": "length" if len(generated) >= max_tokens else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_len,
                "completion_tokens": len(generated),
                "total_tokens": prompt_len + len(generated),
            },
        }


class ProtocolServer:
    """Serve `ProtocolModel` on 127.0.0.1 in a background thread; `url` ends in /v1."""

    def __init__(self, model_dir: Path, *, port: int = 0, fail_first: int = 0) -> None:
        self.model = ProtocolModel(model_dir)
        self.fail_first = fail_first
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model.name}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests += 1
                if server.requests <= server.fail_first:
                    self._send(503, {"error": {"message": "warming up"}})
                    return
                try:
                    self._send(200, server.model.complete(body))
                except (KeyError, ValueError) as exc:
                    self._send(400, {"error": {"message": str(exc)}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ProtocolServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--fail-first", type=int, default=0)
    args = ap.parse_args()
    with ProtocolServer(args.model_dir, port=args.port, fail_first=args.fail_first) as srv:
        print(f"serving {args.model_dir} at {srv.url}", flush=True)
        srv.thread.join()


if __name__ == "__main__":
    main()
