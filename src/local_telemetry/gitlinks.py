"""Browser links for a run's repository and commit.

``git_repo`` may be an https URL, an ``ssh://`` URL or the scp-like ``git@host:org/repo``
form, with or without ``.git``. GitHub, GitLab and Bitbucket (cloud) are known; a
self-hosted host is known only when mapped to a platform by ``TELEMETRY_GIT_HOSTS``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from local_telemetry.config import GitPlatform

KNOWN_HOSTS: dict[str, GitPlatform] = {
    "github.com": "github",
    "www.github.com": "github",
    "gitlab.com": "gitlab",
    "www.gitlab.com": "gitlab",
    "bitbucket.org": "bitbucket",
    "www.bitbucket.org": "bitbucket",
}

_COMMIT_PATHS: dict[GitPlatform, str] = {
    "github": "{repo}/commit/{sha}",
    "gitlab": "{repo}/-/commit/{sha}",
    "bitbucket": "{repo}/commits/{sha}",
}

_SCP_FORM = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>(?!//)[^\s]+)$")
_PATH_PART = re.compile(r"^[\w.~-]+$")


@functools.lru_cache(maxsize=4096)  # a few repositories recur across many runs
def _host_and_path(git_repo: str) -> tuple[str, str] | None:
    text = git_repo.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError:  # e.g. an unclosed "[" of an IPv6 address
            return None
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh") or not parts.hostname:
            return None
        return parts.hostname.lower(), parts.path
    match = _SCP_FORM.match(text)
    if match is None:
        return None
    return match["host"].lower(), match["path"]


def _platform(host: str, extra_hosts: Mapping[str, GitPlatform]) -> GitPlatform | None:
    return KNOWN_HOSTS.get(host) or extra_hosts.get(host)


def repo_url(git_repo: str | None, extra_hosts: Mapping[str, GitPlatform]) -> str | None:
    """The https page of the repository, or ``None`` when the host is unknown.

    >>> repo_url("git@github.com:org/repo.git", {})
    'https://github.com/org/repo'
    """
    if not git_repo:
        return None
    found = _host_and_path(git_repo)
    if found is None:
        return None
    host, path = found
    if _platform(host, extra_hosts) is None:
        return None
    segments = [s for s in path.strip("/").split("/") if s]
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1][: -len(".git")]
    if len(segments) < 2 or not all(_PATH_PART.match(s) and s not in (".", "..") for s in segments):
        return None
    return f"https://{host.removeprefix('www.')}/{'/'.join(segments)}"


def commit_url(
    git_repo: str | None, commit_hash: str | None, extra_hosts: Mapping[str, GitPlatform]
) -> str | None:
    """The https page of the commit, or ``None`` when repo, hash or platform is unknown.

    >>> commit_url("https://gitlab.com/org/repo", "abc1234", {})
    'https://gitlab.com/org/repo/-/commit/abc1234'
    """
    if not commit_hash or not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit_hash):
        return None
    repo = repo_url(git_repo, extra_hosts)
    if repo is None:
        return None
    found = _host_and_path(git_repo or "")
    platform = _platform(found[0], extra_hosts) if found else None
    if platform is None:
        return None
    return _COMMIT_PATHS[platform].format(repo=repo, sha=commit_hash.lower())
