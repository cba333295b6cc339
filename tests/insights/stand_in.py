"""A stand-in LLM provider for the tests: an HTTP server on 127.0.0.1 that speaks the
chat-completions protocol (tool calls, and server-sent events when asked to stream), answering
each request with the next step of the test's script. The `openai` client talks to it over
real HTTP, as it would to any compatible server.

A step is a function of the request body returning a message dict ({"content": ...} or
{"tool_calls": [...]}), or `Slow(seconds, step)`, or `Fails(status)`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


@dataclass
class Slow:
    seconds: float
    step: Callable[[dict], dict]


@dataclass
class Fails:
    status: int


def tool_call(name: str, arguments: str | dict, call_id: str = "call_1") -> dict:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


class StandIn:
    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append(body)
                step = stand_in.script.pop(0) if stand_in.script else Fails(500)
                if isinstance(step, Slow):
                    time.sleep(step.seconds)
                    step = step.step
                if isinstance(step, Fails):
                    self._send(step.status, {"error": {"message": "scripted failure"}})
                    return
                message = {"role": "assistant", "content": None, **step(body)}
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                if body.get("stream"):
                    usage = (body.get("stream_options") or {}).get("include_usage", False)
                    self._stream(message, finish, usage)
                    return
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": {
                            "prompt_tokens": 100,
                            "completion_tokens": 20,
                            "total_tokens": 120,
                        },
                    },
                )

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # The client may have given up (a timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def _stream(self, message: dict, finish: str, usage: bool) -> None:
                """The message in pieces, as providers stream: text a few characters at a
                time, each tool call's arguments split in two; the usage last if asked."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                content = message.get("content") or ""
                deltas: list[dict] = [{"role": "assistant", "content": ""}]
                deltas += [{"content": content[i : i + 8]} for i in range(0, len(content), 8)]
                for index, call in enumerate(message.get("tool_calls") or []):
                    arguments = call["function"]["arguments"]
                    half = len(arguments) // 2
                    first = {
                        **call,
                        "function": {**call["function"], "arguments": arguments[:half]},
                    }
                    rest = {"function": {"arguments": arguments[half:]}}
                    deltas.append({"tool_calls": [{"index": index, **first}]})
                    deltas.append({"tool_calls": [{"index": index, **rest}]})
                chunks = [
                    {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    for delta in deltas
                ]
                chunks[-1]["choices"][0]["finish_reason"] = finish
                if usage:
                    chunks.append({"choices": [], "usage": USAGE})
                for chunk in chunks:
                    chunk |= {
                        "id": "chatcmpl-test",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "stand-in",
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # serve_forever checks for shutdown every poll_interval (0.5 s by default), so each
        # test waited up to half a second for its stand-in to stop.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
