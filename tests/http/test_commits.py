"""Commit association and the commit/repository browser links of a run."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from support import StartServer, new_run

SHA = "0123456789abcdef0123456789abcdef01234567"


def created(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    run = new_run(**fields)
    assert api.post("/api/v1/runs", json=run).status_code == 201
    return run


def fetch(api: httpx.Client, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{event_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def associate(api: httpx.Client, event_id: str, body: Any) -> httpx.Response:
    return api.post(f"/api/v1/runs/{event_id}/associate-commit", json=body)


def links(api: httpx.Client, event_id: str) -> tuple[Any, Any]:
    commit = api.get(f"/api/v1/runs/{event_id}/commit-url")
    repo = api.get(f"/api/v1/runs/{event_id}/repo-url")
    assert commit.status_code == 200, commit.text
    assert repo.status_code == 200, repo.text
    assert set(commit.json()) == {"commit_url"}
    assert set(repo.json()) == {"repo_url"}
    return commit.json()["commit_url"], repo.json()["repo_url"]


# ----- associate-commit -----


def test_associate_commit_answers_success(api: httpx.Client) -> None:
    run = created(api)
    response = associate(
        api, run["event_id"], {"commit_hash": "abc1234567890", "commit_source": "llm"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "event_id": run["event_id"],
        "run_id": run["run_id"],
        "commit_hash": "abc1234567890",
    }


def test_associate_commit_persists_every_field(api: httpx.Client) -> None:
    run = created(api)
    body = {
        "commit_hash": "ABC1234567890",
        "commit_source": "llm",
        "commit_author": "Claude Code <noreply@anthropic.com>",
        "commit_timestamp": "2026-01-12T12:35:00+02:00",
    }
    response = associate(api, run["event_id"], body)
    assert response.status_code == 200
    assert response.json()["commit_hash"] == "abc1234567890"
    got = fetch(api, run["event_id"])
    assert got["git_commit_hash"] == "abc1234567890"
    assert got["git_commit_source"] == "llm"
    assert got["git_commit_author"] == "Claude Code <noreply@anthropic.com>"
    assert got["git_commit_timestamp"] == "2026-01-12T10:35:00.000000Z"
    assert got["updated_at"] is not None


def test_associate_commit_replaces_an_earlier_commit(api: httpx.Client) -> None:
    run = created(api, git_commit_hash="1111111", git_commit_source="manual")
    body = {"commit_hash": "2222222", "commit_source": "ci"}
    assert associate(api, run["event_id"], body).status_code == 200
    got = fetch(api, run["event_id"])
    assert got["git_commit_hash"] == "2222222"
    assert got["git_commit_source"] == "ci"


def test_associate_commit_without_optional_fields_keeps_them(api: httpx.Client) -> None:
    run = created(
        api, git_commit_author="Jane <j@example.com>", git_commit_timestamp="2026-01-12T10:00:00Z"
    )
    body = {"commit_hash": "abcdef1", "commit_source": "manual"}
    assert associate(api, run["event_id"], body).status_code == 200
    got = fetch(api, run["event_id"])
    assert got["git_commit_author"] == "Jane <j@example.com>"
    assert got["git_commit_timestamp"] == "2026-01-12T10:00:00.000000Z"


@pytest.mark.parametrize("source", ["manual", "llm", "ci"])
def test_associate_commit_accepts_each_source(api: httpx.Client, source: str) -> None:
    run = created(api)
    body = {"commit_hash": "abcdef1", "commit_source": source}
    assert associate(api, run["event_id"], body).status_code == 200
    assert fetch(api, run["event_id"])["git_commit_source"] == source


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"commit_hash": "abc123", "commit_source": "llm"}, id="6-chars"),
        pytest.param({"commit_hash": "a" * 41, "commit_source": "llm"}, id="41-chars"),
        pytest.param({"commit_hash": "xyz1234", "commit_source": "llm"}, id="not-hex"),
        pytest.param({"commit_hash": "", "commit_source": "llm"}, id="empty"),
        pytest.param({"commit_hash": 1234567, "commit_source": "llm"}, id="number"),
        pytest.param({"commit_source": "llm"}, id="hash-missing"),
        pytest.param({"commit_hash": "abcdef1", "commit_source": "robot"}, id="bad-source"),
        pytest.param({"commit_hash": "abcdef1", "commit_source": "LLM"}, id="source-case"),
        pytest.param({"commit_hash": "abcdef1"}, id="source-missing"),
        pytest.param(
            {
                "commit_hash": "abcdef1",
                "commit_source": "llm",
                "commit_timestamp": "2026-01-12T10:35:00",
            },
            id="naive-timestamp",
        ),
        pytest.param(
            {"commit_hash": "abcdef1", "commit_source": "llm", "commit_timestamp": "later"},
            id="unparsable-timestamp",
        ),
        pytest.param(
            {"commit_hash": "abcdef1", "commit_source": "llm", "commit_author": "a\x00b"},
            id="nul-author",
        ),
    ],
)
def test_associate_commit_rejects_invalid_body(api: httpx.Client, body: dict[str, Any]) -> None:
    run = created(api, git_commit_hash="1234567", git_commit_source="manual")
    before = fetch(api, run["event_id"])
    response = associate(api, run["event_id"], body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert fetch(api, run["event_id"]) == before


def test_associate_commit_with_naive_timestamp_names_the_field(api: httpx.Client) -> None:
    run = created(api)
    body = {"commit_hash": "abcdef1", "commit_source": "llm", "commit_timestamp": "2026-01-12"}
    response = associate(api, run["event_id"], body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "commit_timestamp"]


def test_associate_commit_for_unknown_run_is_404(api: httpx.Client) -> None:
    event_id = f"missing-{uuid.uuid4()}"
    response = associate(api, event_id, {"commit_hash": "abcdef1", "commit_source": "llm"})
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run not found: {event_id}"}
    assert api.get(f"/api/v1/runs/{event_id}").status_code == 404


# ----- commit-url and repo-url -----


@pytest.mark.parametrize(
    ("git_repo", "commit_url", "repo_url"),
    [
        (
            "https://github.com/org/repo",
            f"https://github.com/org/repo/commit/{SHA}",
            "https://github.com/org/repo",
        ),
        (
            "https://github.com/org/repo.git",
            f"https://github.com/org/repo/commit/{SHA}",
            "https://github.com/org/repo",
        ),
        (
            "https://github.com/org/repo/",
            f"https://github.com/org/repo/commit/{SHA}",
            "https://github.com/org/repo",
        ),
        (
            "git@github.com:org/repo.git",
            f"https://github.com/org/repo/commit/{SHA}",
            "https://github.com/org/repo",
        ),
        (
            "https://gitlab.com/org/repo",
            f"https://gitlab.com/org/repo/-/commit/{SHA}",
            "https://gitlab.com/org/repo",
        ),
        (
            "ssh://git@gitlab.com/org/sub/repo.git",
            f"https://gitlab.com/org/sub/repo/-/commit/{SHA}",
            "https://gitlab.com/org/sub/repo",
        ),
        (
            "git@gitlab.com:org/sub/repo.git",
            f"https://gitlab.com/org/sub/repo/-/commit/{SHA}",
            "https://gitlab.com/org/sub/repo",
        ),
        (
            "https://bitbucket.org/org/repo",
            f"https://bitbucket.org/org/repo/commits/{SHA}",
            "https://bitbucket.org/org/repo",
        ),
        (
            "git@bitbucket.org:org/repo.git",
            f"https://bitbucket.org/org/repo/commits/{SHA}",
            "https://bitbucket.org/org/repo",
        ),
    ],
)
def test_links_for_known_platforms(
    api: httpx.Client, git_repo: str, commit_url: str, repo_url: str
) -> None:
    run = created(api, git_repo=git_repo, git_commit_hash=SHA)
    assert links(api, run["event_id"]) == (commit_url, repo_url)
    got = fetch(api, run["event_id"])
    assert (got["commit_url"], got["repo_url"]) == (commit_url, repo_url)


def test_links_use_the_lower_case_hash(api: httpx.Client) -> None:
    run = created(api, git_repo="https://github.com/org/repo", git_commit_hash="ABCDEF1")
    commit_url, _ = links(api, run["event_id"])
    assert commit_url == "https://github.com/org/repo/commit/abcdef1"


def test_run_without_git_data_has_null_links(api: httpx.Client) -> None:
    run = created(api)
    assert links(api, run["event_id"]) == (None, None)


def test_repo_without_commit_has_repo_url_only(api: httpx.Client) -> None:
    run = created(api, git_repo="https://github.com/org/repo")
    assert links(api, run["event_id"]) == (None, "https://github.com/org/repo")


def test_commit_without_repo_has_null_links(api: httpx.Client) -> None:
    run = created(api, git_commit_hash=SHA)
    assert links(api, run["event_id"]) == (None, None)


@pytest.mark.parametrize(
    "git_repo", ["not a url", "https://github.com/", "https://github.com/org", "file:///tmp/repo"]
)
def test_unusable_repo_has_null_links(api: httpx.Client, git_repo: str) -> None:
    run = created(api, git_repo=git_repo, git_commit_hash=SHA)
    assert links(api, run["event_id"]) == (None, None)


def test_associated_commit_appears_in_commit_url(api: httpx.Client) -> None:
    run = created(api, git_repo="https://github.com/org/repo")
    assert links(api, run["event_id"])[0] is None
    body = {"commit_hash": "FEDCBA9876", "commit_source": "ci"}
    assert associate(api, run["event_id"], body).status_code == 200
    expected = "https://github.com/org/repo/commit/fedcba9876"
    assert links(api, run["event_id"])[0] == expected
    assert fetch(api, run["event_id"])["commit_url"] == expected


@pytest.mark.parametrize("endpoint", ["commit-url", "repo-url"])
def test_links_of_unknown_run_are_404(api: httpx.Client, endpoint: str) -> None:
    event_id = f"missing-{uuid.uuid4()}"
    response = api.get(f"/api/v1/runs/{event_id}/{endpoint}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run not found: {event_id}"}


def test_self_hosted_host_is_unknown_by_default(api: httpx.Client) -> None:
    run = created(api, git_repo="https://git.example.com/org/repo.git", git_commit_hash=SHA)
    assert links(api, run["event_id"]) == (None, None)
    got = fetch(api, run["event_id"])
    assert got["commit_url"] is None
    assert got["repo_url"] is None


def test_self_hosted_host_mapped_by_git_hosts_setting(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_GIT_HOSTS="git.example.com=gitlab,code.corp=bitbucket")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        gitlab = created(
            client, git_repo="https://git.example.com/org/repo.git", git_commit_hash=SHA
        )
        ssh = created(client, git_repo="git@code.corp:team/repo.git", git_commit_hash=SHA)
        unmapped = created(client, git_repo="https://git.other.com/org/repo", git_commit_hash=SHA)
        assert links(client, gitlab["event_id"]) == (
            f"https://git.example.com/org/repo/-/commit/{SHA}",
            "https://git.example.com/org/repo",
        )
        assert fetch(client, gitlab["event_id"])["commit_url"] == (
            f"https://git.example.com/org/repo/-/commit/{SHA}"
        )
        assert links(client, ssh["event_id"]) == (
            f"https://code.corp/team/repo/commits/{SHA}",
            "https://code.corp/team/repo",
        )
        assert links(client, unmapped["event_id"]) == (None, None)
        github = created(client, git_repo="https://github.com/org/repo", git_commit_hash=SHA)
        assert links(client, github["event_id"])[0] == f"https://github.com/org/repo/commit/{SHA}"
