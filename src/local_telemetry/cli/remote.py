"""Talking to a running server from the command line: ``--url``, the token, errors.

Every command that works through the HTTP API takes the same two options, resolved like
the SDK resolves them: ``--url`` (``TELEMETRY_API_URL``, default
``http://localhost:8765``) and ``--token`` (``TELEMETRY_API_TOKEN``, else the server's
own ``TELEMETRY_API_AUTH_TOKEN`` so an operator on the server's machine needs nothing
more). Failures become one line on stderr and an exit status: 2 when the server says
the request itself is wrong (400/404/409/422: bad arguments), 1 for everything else
(unreachable, refused credentials, 5xx).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import httpx
import orjson
import typer

from local_telemetry.client.core import DEFAULT_API_URL

EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2
TIMEOUT_SECONDS = 30.0

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help=f"Server address [TELEMETRY_API_URL, default {DEFAULT_API_URL}].",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Bearer token [TELEMETRY_API_TOKEN, else TELEMETRY_API_AUTH_TOKEN].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def resolve_url(url: str | None) -> str:
    """``--url``, else ``TELEMETRY_API_URL``, else the default, without a trailing ``/``."""
    return (url or os.environ.get("TELEMETRY_API_URL") or DEFAULT_API_URL).rstrip("/")


def resolve_token(token: str | None) -> str | None:
    """``--token``, else ``TELEMETRY_API_TOKEN``, else ``TELEMETRY_API_AUTH_TOKEN``."""
    for found in (
        token,
        os.environ.get("TELEMETRY_API_TOKEN"),
        os.environ.get("TELEMETRY_API_AUTH_TOKEN"),
    ):
        if found:
            return found
    return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query"))
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return detail if isinstance(detail, str) else orjson.dumps(detail).decode()


class Remote:
    """An HTTP client for one server; every failure exits the command (see module doc)."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = resolve_url(url)
        headers = {"User-Agent": "local-telemetry-cli"}
        found = resolve_token(token)
        if found:
            headers["Authorization"] = f"Bearer {found}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def check(self, response: httpx.Response) -> httpx.Response:
        """``response`` when it is a 2xx; otherwise exit with the server's reason."""
        if response.is_success:
            return response
        status = response.status_code
        detail = _detail(response)
        if status in (401, 403):
            fail(f"{status} from {self.url}: {detail} (set TELEMETRY_API_TOKEN or pass --token)")
        if status in (400, 404, 409, 413, 415, 422):
            fail(f"{status}: {detail}", EXIT_BAD_ARGUMENTS)
        fail(f"{status} from {self.url}: {detail}")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request and return the 2xx response (see :meth:`check`)."""
        try:
            response = self.http.request(method, path, params=_params(params), json=json)
        except httpx.TransportError as exc:
            self.unreachable(exc)
        return self.check(response)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET path`` and its decoded JSON body."""
        return self.request("GET", path, params=params).json()

    def post(self, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """``POST path`` with a JSON body and the decoded JSON answer."""
        return self.request("POST", path, params=params, json=json).json()

    @contextmanager
    def stream(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[httpx.Response]:
        """``GET path`` as a streamed 2xx response (no read timeout between chunks)."""
        try:
            no_read_limit = httpx.Timeout(TIMEOUT_SECONDS, read=None)
            with self.http.stream(
                "GET", path, params=_params(params), timeout=no_read_limit
            ) as response:
                if not response.is_success:
                    response.read()
                yield self.check(response)
        except httpx.TransportError as exc:
            self.unreachable(exc)

    def unreachable(self, exc: Exception) -> NoReturn:
        """Exit 1: the server could not be reached or the connection broke."""
        fail(
            f"cannot reach the server at {self.url} ({exc.__class__.__name__}: {exc}); "
            "is it running (local-telemetry serve) and is --url / TELEMETRY_API_URL right?"
        )


def _params(params: Mapping[str, Any] | None) -> httpx.QueryParams | None:
    """Query parameters without the unset ones; lists repeat the parameter."""
    if params is None:
        return None
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            text = str(item).lower() if isinstance(item, bool) else str(item)
            pairs.append((name, text))
    return httpx.QueryParams(pairs)
