"""A tiny real HTTP server (ASGI, run by uvicorn) that answers from a script.

``FLAKY_SCRIPT`` is a comma-separated list of statuses the server answers, in order, to
write requests (``429:2`` means 429 with ``Retry-After: 2``); once it is used up every
write succeeds like the real server. ``GET /requests`` tells how many write requests of
each method arrived. Used to test the SDK's retry rules against real HTTP answers.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

SCRIPT = [step for step in os.environ.get("FLAKY_SCRIPT", "").split(",") if step]
SEEN: Counter[str] = Counter()


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": raw})


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Answer /health, /requests, and write requests from the script."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _body(receive)
    if scope["method"] == "GET":
        await _answer(send, 200, {"status": "ok", "seen": dict(SEEN)}, [])
        return
    SEEN[scope["method"]] += 1
    if SCRIPT:
        step = SCRIPT.pop(0)
        status, _, retry_after = step.partition(":")
        headers = [(b"retry-after", retry_after.encode())] if retry_after else []
        await _answer(send, int(status), {"detail": f"scripted {status}"}, headers)
        return
    if scope["path"].endswith("/batch"):
        items = json.loads(body)
        await _answer(
            send,
            200,
            {"inserted": len(items), "duplicates": 0, "errors": [], "total": len(items)},
            [],
        )
    else:
        await _answer(send, 200, {"updated": True}, [])
