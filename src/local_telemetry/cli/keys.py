"""``keys create|list|revoke``: scoped API keys, managed through the server's API.

Every command needs an admin key (``--token``, ``TELEMETRY_API_TOKEN``, or the server's
own ``TELEMETRY_API_AUTH_TOKEN``). ``keys create`` prints the new key alone on stdout so
it can be captured (``KEY=$(local-telemetry keys create ...)``); it is never shown again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from local_telemetry.cli.remote import (
    EXIT_BAD_ARGUMENTS,
    JsonOption,
    Remote,
    TokenOption,
    UrlOption,
    fail,
    print_json,
)
from local_telemetry.cli.root import app
from local_telemetry.cli.tables import print_found, print_table, text, timestamp
from local_telemetry.durations import parse_duration

KEYS_PATH = "/api/v1/keys"
EXPIRY_UNITS = "smhdw"
LIST_COLUMNS = ("id", "name", "scope", "prefix", "created", "expires", "state")


class Scope(StrEnum):
    """What a key may do: read < ingest < admin."""

    read = "read"
    ingest = "ingest"
    admin = "admin"


keys_app = typer.Typer(
    help=(
        "Scoped API keys: 'create' prints a new key once, 'list' shows keys (never the keys"
        " themselves), 'revoke' ends one at once. Needs an admin token."
    ),
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            case_sensitive=False,
            help="read: GET the API, metrics, dashboard; ingest: read + record runs; admin: all.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="What the key is for (shown in lists).")],
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime like 30d, 12h, 2w (default: no expiry)."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {id, key, scope, expires_at} as JSON.")
    ] = False,
) -> None:
    """Create an API key and print it (alone on stdout); it cannot be shown again."""
    if expires_in is not None:
        try:
            parse_duration(expires_in, units=EXPIRY_UNITS)
        except ValueError as exc:
            fail(f"--expires-in: {exc}", EXIT_BAD_ARGUMENTS)
    body: dict[str, Any] = {"name": name, "scope": scope.value}
    if expires_in is not None:
        body["expires_in"] = expires_in.strip()
    with Remote(url, token) as remote:
        created = remote.post(KEYS_PATH, json=body)
    if as_json:
        print_json({k: created[k] for k in ("id", "key", "scope", "expires_at")})
        return
    typer.echo(created["key"])
    expiry = f", expires {created['expires_at']}" if created["expires_at"] else ""
    typer.echo(
        f"created key {created['id']} ({created['scope']}, {created['name']!r}{expiry}); "
        "store it now: it is not shown again",
        err=True,
    )


def _state(key: dict[str, Any]) -> str:
    if key.get("revoked_at"):
        return "revoked"
    return "active" if key.get("active") else "expired"


def _render(keys: list[dict[str, Any]]) -> None:
    rows = [
        [
            text(key["id"]),
            text(key["name"]),
            text(key["scope"]),
            text(key["prefix"]),
            timestamp(key["created_at"]),
            timestamp(key["expires_at"]) if key["expires_at"] else "never",
            _state(key),
        ]
        for key in keys
    ]
    print_table(LIST_COLUMNS, rows, no_wrap=("id", "prefix", "created", "expires"))


@keys_app.command("list")
def list_keys(
    url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """List API keys, oldest first, with their state (never the keys themselves)."""
    with Remote(url, token) as remote:
        found = remote.get(KEYS_PATH)
    print_found(found, as_json=as_json, render=_render, nothing="no API keys")


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="The key's id (keys list).")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    with Remote(url, token) as remote:
        revoked = remote.request("DELETE", f"{KEYS_PATH}/{key_id}").json()
    if as_json:
        print_json(revoked)
    else:
        typer.echo(f"revoked key {revoked['id']} ({revoked['name']!r}, {revoked['prefix']})")
