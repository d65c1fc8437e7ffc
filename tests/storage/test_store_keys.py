"""Store contract for API keys (both backends): create, find by prefix, list, revoke."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from local_telemetry.storage.base import API_KEY_COLUMNS, CreateApiKey, RevokeApiKey, Store

HASH = "ab" * 32


def key(prefix: str, scope: str = "ingest", expires_at: str | None = None) -> CreateApiKey:
    return CreateApiKey(f"name-{prefix}", scope, prefix, HASH, expires_at)


def test_a_created_key_is_found_by_prefix_with_its_hash(store: Store) -> None:
    (created,) = store.apply([key("0123456789ab", "read", "2030-01-01T00:00:00.000000Z")])
    assert tuple(created) == API_KEY_COLUMNS
    assert created["id"] >= 1
    assert created["scope"] == "read"
    assert created["expires_at"] == "2030-01-01T00:00:00.000000Z"
    assert created["revoked_at"] is None
    found = store.find_api_key("0123456789ab")
    assert found == {**created, "key_hash": HASH}
    assert store.find_api_key("0123456789ac") is None
    assert store.find_api_key("") is None
    assert store.find_api_key("a\x00b") is None  # PostgreSQL cannot even compare a NUL


def test_listing_never_holds_hashes_and_is_oldest_first(store: Store) -> None:
    store.apply([key("aaaaaaaaaaaa"), key("bbbbbbbbbbbb", "admin")])
    listed = store.list_api_keys()
    assert [k["prefix"] for k in listed] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert all(tuple(k) == API_KEY_COLUMNS for k in listed)
    assert all(HASH not in k.values() for k in listed)


def test_revoke_sets_revoked_at_once_and_unknown_ids_are_none(store: Store) -> None:
    (created,) = store.apply([key("cccccccccccc")])
    (revoked,) = store.apply([RevokeApiKey(created["id"])])
    assert revoked["revoked_at"] is not None
    (again,) = store.apply([RevokeApiKey(created["id"])])
    assert again["revoked_at"] == revoked["revoked_at"]  # the first revocation time stays
    assert store.find_api_key("cccccccccccc")["revoked_at"] == revoked["revoked_at"]  # type: ignore[index]
    assert store.apply([RevokeApiKey(created["id"] + 1000)]) == [None]


def test_a_taken_prefix_or_bad_scope_fails_alone(store: Store) -> None:
    results = store.apply(
        [key("dddddddddddd"), key("dddddddddddd"), key("eeeeeeeeeeee", "root"), key("ffffffffffff")]
    )
    assert isinstance(results[0], dict)
    assert isinstance(results[1], sqlite3.IntegrityError | psycopg.errors.IntegrityError)
    assert isinstance(results[2], sqlite3.IntegrityError | psycopg.errors.IntegrityError)
    assert isinstance(results[3], dict)  # the failures undid only themselves
    assert [k["prefix"] for k in store.list_api_keys()] == ["dddddddddddd", "ffffffffffff"]


@pytest.mark.parametrize("prefix", ["'; DROP TABLE api_keys; --", "%", "_" * 12])
def test_prefix_lookups_are_parameters_not_patterns(store: Store, prefix: str) -> None:
    store.apply([key("gggggggggggg")])
    assert store.find_api_key(prefix) is None
    assert len(store.list_api_keys()) == 1
