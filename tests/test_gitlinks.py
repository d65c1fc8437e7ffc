"""Browser links for a run's repository and commit, from every common git_repo form."""

from __future__ import annotations

import pytest

from local_telemetry.config import GitPlatform
from local_telemetry.gitlinks import commit_url, repo_url

NO_HOSTS: dict[str, GitPlatform] = {}
SHA = "0123456789abcdef0123456789abcdef01234567"

GITHUB = "https://github.com/org/repo"
GITLAB = "https://gitlab.com/group/repo"
BITBUCKET = "https://bitbucket.org/team/repo"


@pytest.mark.parametrize(
    ("git_repo", "expected"),
    [
        ("https://github.com/org/repo", GITHUB),
        ("https://github.com/org/repo.git", GITHUB),
        ("https://github.com/org/repo/", GITHUB),
        ("https://github.com/org/repo.git/", GITHUB),
        ("http://github.com/org/repo", GITHUB),
        ("https://www.github.com/org/repo", GITHUB),
        ("https://GitHub.COM/org/repo", GITHUB),
        ("https://user:secret@github.com/org/repo.git", GITHUB),
        ("  https://github.com/org/repo  ", GITHUB),
        ("git@github.com:org/repo.git", GITHUB),
        ("git@github.com:org/repo", GITHUB),
        ("github.com:org/repo.git", GITHUB),
        ("ssh://git@github.com/org/repo.git", GITHUB),
        ("ssh://git@github.com:22/org/repo", GITHUB),
        ("git+ssh://git@github.com/org/repo.git", GITHUB),
        ("git://github.com/org/repo.git", GITHUB),
        ("https://gitlab.com/group/repo", GITLAB),
        ("https://gitlab.com/group/repo.git/", GITLAB),
        ("git@gitlab.com:group/repo.git", GITLAB),
        ("ssh://git@gitlab.com/group/repo.git", GITLAB),
        ("https://gitlab.com/group/sub/repo", "https://gitlab.com/group/sub/repo"),
        ("git@gitlab.com:group/sub/repo.git", "https://gitlab.com/group/sub/repo"),
        ("https://bitbucket.org/team/repo", BITBUCKET),
        ("https://bitbucket.org/team/repo.git", BITBUCKET),
        ("git@bitbucket.org:team/repo.git", BITBUCKET),
        ("ssh://git@bitbucket.org/team/repo.git", BITBUCKET),
    ],
)
def test_repo_url_of_known_hosts_in_every_form(git_repo: str, expected: str) -> None:
    assert repo_url(git_repo, NO_HOSTS) == expected


@pytest.mark.parametrize(
    ("git_repo", "expected"),
    [
        ("https://github.com/org/repo.git", f"{GITHUB}/commit/{SHA}"),
        ("git@github.com:org/repo.git", f"{GITHUB}/commit/{SHA}"),
        ("ssh://git@github.com/org/repo/", f"{GITHUB}/commit/{SHA}"),
        ("https://gitlab.com/group/repo.git", f"{GITLAB}/-/commit/{SHA}"),
        ("git@gitlab.com:group/repo", f"{GITLAB}/-/commit/{SHA}"),
        ("https://bitbucket.org/team/repo/", f"{BITBUCKET}/commits/{SHA}"),
        ("git@bitbucket.org:team/repo.git", f"{BITBUCKET}/commits/{SHA}"),
    ],
)
def test_commit_url_uses_each_platforms_commit_path(git_repo: str, expected: str) -> None:
    assert commit_url(git_repo, SHA, NO_HOSTS) == expected


@pytest.mark.parametrize("sha", ["abcdef1", "ABCDEF1234", SHA.upper()])
def test_commit_url_accepts_7_to_40_hex_digits_and_lower_cases_them(sha: str) -> None:
    assert commit_url(GITHUB, sha, NO_HOSTS) == f"{GITHUB}/commit/{sha.lower()}"


@pytest.mark.parametrize(
    "git_repo",
    [
        "https://git.example.com/org/repo",
        "git@git.example.com:org/repo.git",
        "https://evilgithub.com/org/repo",
        "https://github.com.evil.example/org/repo",
        "https://gitea.com/org/repo",
    ],
)
def test_unknown_hosts_give_no_links(git_repo: str) -> None:
    assert repo_url(git_repo, NO_HOSTS) is None
    assert commit_url(git_repo, SHA, NO_HOSTS) is None


def test_a_self_hosted_host_is_linked_once_mapped_to_a_platform() -> None:
    hosts: dict[str, GitPlatform] = {"git.example.com": "gitlab", "code.corp": "github"}
    assert repo_url("https://git.example.com/org/repo.git", hosts) == (
        "https://git.example.com/org/repo"
    )
    assert commit_url("git@git.example.com:org/repo.git", SHA, hosts) == (
        f"https://git.example.com/org/repo/-/commit/{SHA}"
    )
    assert commit_url("ssh://git@code.corp/team/app.git", SHA, hosts) == (
        f"https://code.corp/team/app/commit/{SHA}"
    )
    # The mapping adds hosts; it does not replace the known ones.
    assert repo_url(GITHUB, hosts) == GITHUB


def test_a_mapped_host_is_matched_case_insensitively() -> None:
    hosts: dict[str, GitPlatform] = {"git.example.com": "bitbucket"}
    assert commit_url("https://GIT.Example.com/team/repo", SHA, hosts) == (
        f"https://git.example.com/team/repo/commits/{SHA}"
    )


@pytest.mark.parametrize(
    "git_repo",
    [
        None,
        "",
        "   ",
        "not a url",
        "github.com/org/repo",
        "https://github.com",
        "https://github.com/",
        "https://github.com/org",
        "https://github.com/org/repo.git/..",
        "https://github.com/org/repo/../../other/repo",
        "git@github.com:org/../other",
        "https://github.com/org/re po",
        "https://github.com/org/<script>",
        "https://github.com/org/repo%2F..",
        "ftp://github.com/org/repo",
        "file:///srv/git/org/repo",
        "javascript://github.com/org/repo",
        "https:///org/repo",
        "https://[::1/org/repo",
        "/srv/git/org/repo",
        "C:\\repos\\org\\repo",
        "git@github.com://org/repo",
    ],
)
def test_malformed_git_repo_gives_no_links(git_repo: str | None) -> None:
    assert repo_url(git_repo, NO_HOSTS) is None
    assert commit_url(git_repo, SHA, NO_HOSTS) is None


@pytest.mark.parametrize(
    "sha",
    [None, "", "abcdef", "abcdefg", "abc def1", SHA + "0", "-abcdef1", "abcdef1\n", "0x12345"],
)
def test_bad_commit_hash_gives_no_commit_url(sha: str | None) -> None:
    assert commit_url(GITHUB, sha, NO_HOSTS) is None
    assert repo_url(GITHUB, NO_HOSTS) == GITHUB  # the repository link does not need it
