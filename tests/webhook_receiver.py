"""A real local HTTP server that records webhook POSTs and answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Listens on 127.0.0.1 (free port); ``answers`` are status codes used in turn for
    successive requests (then 200 for ever). ``received`` holds every request's decoded
    JSON body with its ``answer``; ``delivered`` only those answered 2xx."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = list(answers or [])
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver._lock:
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append({"answer": answer, "body": body})
                    receiver.headers.append(dict(self.headers.items()))
                self.send_response(answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 2xx, in arrival order."""
        with self._lock:
            return [r["body"] for r in self.received if 200 <= r["answer"] < 300]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], seconds: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until ``predicate(delivered)`` holds; the delivered bodies (AssertionError
        when it never does)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate(self.delivered):
                return self.delivered
            time.sleep(0.05)
        raise AssertionError(f"webhook receiver got only {self.received!r}")

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()
