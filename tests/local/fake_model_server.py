"""A small OpenAI-compatible model server, run as a child process by managed-server tests.

    python fake_model_server.py --port 8080 --model echo [--startup-delay 0.3] [--exit-at-start 2]

GET /health (503 while "loading", then {"status": "ok", "pid": ...}), GET /v1/models,
POST /v1/chat/completions (JSON or SSE stream, the reply echoes the last user message),
POST /crash (exits with code 3 at once, as a segfaulting server would). Standard library
only, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="echo")
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--exit-at-start", type=int, default=None, help="exit with this code instead of serving")
    parser.add_argument(
        "--prompt-reading",
        type=float,
        default=0.0,
        help="seconds a stream spends reading the prompt before its first chunk (reported as "
        "llama-server's prompt_progress chunks when the request asks with return_progress)",
    )
    parser.add_argument(
        "--close-after-stream",
        action="store_true",
        help="like llama-server: announce keep-alive, then close the connection after a stream",
    )
    args = parser.parse_args()
    print(f"fake model server pid {os.getpid()} model {args.model} port {args.port}", flush=True)
    if args.exit_at_start is not None:
        print("fatal: cannot load model", file=sys.stderr, flush=True)
        sys.exit(args.exit_at_start)
    ready_at = time.monotonic() + args.startup_delay
    Handler.model = args.model
    Handler.ready_at = ready_at
    Handler.close_after_stream = args.close_after_stream
    Handler.prompt_reading = args.prompt_reading
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening", flush=True)
    server.serve_forever()


class Handler(BaseHTTPRequestHandler):
    model = "echo"
    ready_at = 0.0
    close_after_stream = False
    prompt_reading = 0.0
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        print("request:", format % args, flush=True)

    def do_GET(self) -> None:
        if self.path in ("/health", "/v1/health"):
            if time.monotonic() < self.ready_at:
                self._json(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
            else:
                self._json(200, {"status": "ok", "pid": os.getpid()})
        elif self.path == "/v1/models":
            self._json(
                200,
                {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}]},
            )
        else:
            self._json(404, {"error": {"code": 404, "message": "Not Found", "type": "not_found_error"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.path == "/crash":
            os._exit(3)
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"code": 404, "message": "Not Found", "type": "not_found_error"}})
            return
        text = f"echo from {os.getpid()}: {body['messages'][-1]['content']}"
        if body.get("stream"):
            self._stream(body, text)
        else:
            self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 5,
                        "completion_tokens": len(text.split()),
                        "total_tokens": 5 + len(text.split()),
                    },
                },
            )

    def _read_prompt(self, base: dict, report: bool, steps: int = 8) -> None:
        for step in range(1, steps + 1):
            if not self.prompt_reading:
                return
            time.sleep(self.prompt_reading / steps)
            if report:
                progress = {"total": 800, "cache": 0, "processed": step * 100, "time_ms": 0}
                delta = {"role": "assistant", "content": None}
                event = {
                    **base,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    "prompt_progress": progress,
                }
                self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")

    def _stream(self, body: dict, text: str) -> None:
        """SSE in chunked transfer encoding, as llama-server sends it."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("connection", "keep-alive" if self.close_after_stream else "close")
        self.end_headers()
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }
        self._read_prompt(base, bool(body.get("return_progress")))
        deltas = [{"role": "assistant", "content": ""}] + [{"content": w + " "} for w in text.split()]
        events = [
            {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]} for d in deltas
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 5,
                        "completion_tokens": len(deltas) - 1,
                        "total_tokens": 4 + len(deltas),
                    },
                }
            )
        for event in events:
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if self.close_after_stream:
            time.sleep(0.05)  # the client has pooled the connection and sent its next request by now
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    main()
