"""Git auto-detection reads what the git command reports, without running it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from local_telemetry.client.git import detect_git, remove_credentials


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """An environment where git ignores the user's and the system's configuration."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


class Git:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, check=check, capture_output=True, text=True
        )

    def __call__(self, cwd: Path, *args: str) -> str:
        return self.run(cwd, *args).stdout.strip()

    def init(self, path: Path, *options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self(path, "init", "-q", "-b", "main", *options)
        return path

    def commit(self, repo: Path, name: str = "file.txt") -> str:
        (repo / name).write_text(name + str(len(list(repo.iterdir()))))
        self(repo, "add", name)
        self(repo, "commit", "-q", "-m", f"add {name}")
        return self(repo, "rev-parse", "HEAD")

    def expected(self, path: Path) -> dict[str, str]:
        """What git itself says about ``path`` (origin URL as configured)."""
        facts = {}
        head = self.run(path, "rev-parse", "--verify", "-q", "HEAD", check=False)
        if head.returncode == 0:
            facts["git_commit_hash"] = head.stdout.strip()
        branch = self(path, "branch", "--show-current")
        if branch:
            facts["git_branch"] = branch
        origin = self.run(path, "remote", "get-url", "origin", check=False)
        if origin.returncode == 0:
            facts["git_repo"] = origin.stdout.strip()
        return facts


@pytest.fixture
def git(git_env: dict[str, str]) -> Git:
    return Git(git_env)


@pytest.fixture
def repo(tmp_path: Path, git: Git) -> Path:
    path = git.init(tmp_path / "repo")
    git.commit(path)
    git(path, "remote", "add", "origin", "https://github.com/org/repo.git")
    return path


def test_branch_commit_and_origin_match_git(repo: Path, git: Git) -> None:
    facts = detect_git(repo)

    assert facts == {
        "git_repo": "https://github.com/org/repo.git",
        "git_branch": "main",
        "git_commit_hash": git(repo, "rev-parse", "HEAD"),
    }
    assert facts == git.expected(repo)


def test_found_from_a_subdirectory_and_from_a_file(repo: Path, git: Git) -> None:
    nested = repo / "a" / "b"
    nested.mkdir(parents=True)

    assert detect_git(nested) == git.expected(repo)
    assert detect_git(repo / "file.txt") == git.expected(repo)


def test_default_start_is_the_current_directory(
    repo: Path, git: Git, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)

    assert detect_git() == git.expected(repo)


def test_other_branch_after_checkout(repo: Path, git: Git) -> None:
    git(repo, "checkout", "-q", "-b", "feature/x")
    commit = git.commit(repo, "second.txt")

    facts = detect_git(repo)

    assert facts["git_branch"] == "feature/x"
    assert facts["git_commit_hash"] == commit
    assert facts == git.expected(repo)


def test_detached_head_gives_the_commit_and_no_branch(repo: Path, git: Git) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git.commit(repo, "second.txt")
    git(repo, "checkout", "-q", "--detach", first)

    facts = detect_git(repo)

    assert facts == {"git_repo": "https://github.com/org/repo.git", "git_commit_hash": first}
    assert facts == git.expected(repo)


def test_packed_refs_only(repo: Path, git: Git) -> None:
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert "refs/heads/main" in (repo / ".git" / "packed-refs").read_text()

    facts = detect_git(repo)

    assert facts["git_commit_hash"] == git(repo, "rev-parse", "HEAD")
    assert facts == git.expected(repo)


def test_loose_ref_wins_over_a_stale_packed_ref(repo: Path, git: Git) -> None:
    git(repo, "pack-refs", "--all")
    newer = git.commit(repo, "second.txt")  # written as a loose ref; packed-refs is stale
    assert (repo / ".git" / "refs" / "heads" / "main").exists()

    assert detect_git(repo)["git_commit_hash"] == newer


def test_annotated_tags_in_packed_refs_do_not_confuse_the_lookup(repo: Path, git: Git) -> None:
    git(repo, "tag", "-a", "v1", "-m", "release")  # packed with a "^<peeled>" line
    git(repo, "checkout", "-q", "-b", "zzz")
    git(repo, "pack-refs", "--all")

    assert detect_git(repo) == git.expected(repo)


def test_linked_worktree_reads_shared_config_and_refs(repo: Path, git: Git, tmp_path: Path) -> None:
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    commit = git.commit(worktree, "in-worktree.txt")
    assert (worktree / ".git").is_file()

    facts = detect_git(worktree)

    assert facts == {
        "git_repo": "https://github.com/org/repo.git",
        "git_branch": "feature",
        "git_commit_hash": commit,
    }
    assert facts == git.expected(worktree)
    assert detect_git(repo) == git.expected(repo)  # the main worktree is unaffected


def test_linked_worktree_with_packed_refs(repo: Path, git: Git, tmp_path: Path) -> None:
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    git(repo, "pack-refs", "--all")

    assert detect_git(worktree) == git.expected(worktree)


def test_submodule_gitfile_with_relative_path(repo: Path, git: Git, tmp_path: Path) -> None:
    library = git.init(tmp_path / "library")
    git.commit(library, "lib.txt")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    gitfile = (repo / "lib" / ".git").read_text()
    assert gitfile.startswith("gitdir: ../")

    facts = detect_git(repo / "lib")

    assert facts["git_repo"] == str(library)
    assert facts["git_commit_hash"] == git(library, "rev-parse", "HEAD")
    assert facts == git.expected(repo / "lib")


def test_branch_without_commits(tmp_path: Path, git: Git) -> None:
    path = git.init(tmp_path / "fresh")

    assert detect_git(path) == {"git_branch": "main"}
    assert detect_git(path) == git.expected(path)


@pytest.mark.parametrize(
    ("configured", "reported"),
    [
        ("https://user:token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://oauth2:glpat-x@gitlab.com/g/r.git", "https://gitlab.com/g/r.git"),
        ("https://ghp_secret@github.com/org/repo", "https://github.com/org/repo"),
        ("http://user:pw@host:8080/repo.git", "http://host:8080/repo.git"),
        ("ssh://git:secret@host/org/repo.git", "ssh://git@host/org/repo.git"),
        ("ssh://git@host:2222/org/repo.git", "ssh://git@host:2222/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ],
)
def test_credentials_are_removed_from_the_origin_url(
    repo: Path, git: Git, configured: str, reported: str
) -> None:
    git(repo, "remote", "set-url", "origin", configured)

    assert detect_git(repo)["git_repo"] == reported
    assert "secret" not in str(detect_git(repo))


def test_remove_credentials_keeps_urls_without_user_info() -> None:
    assert remove_credentials("https://host/a@b") == "https://host/a@b"
    assert remove_credentials("/srv/git/repo.git") == "/srv/git/repo.git"
    assert remove_credentials("https://u:p@[::1]:8443/r?x#y") == "https://[::1]:8443/r?x#y"


def test_no_origin_gives_no_repo(repo: Path, git: Git) -> None:
    git(repo, "remote", "rename", "origin", "upstream")

    facts = detect_git(repo)

    assert "git_repo" not in facts
    assert facts == git.expected(repo)
    assert set(facts) == {"git_branch", "git_commit_hash"}


@pytest.mark.parametrize(
    "config",
    [
        '[remote "upstream"]\n\turl = https://h/wrong\n[Remote "origin"]\n\tURL = https://h/right\n',
        '[remote "origin"] url = https://h/right\n',
        "[remote.origin]\n\turl=https://h/right\n",
        '[remote "origin"]\n\turl = "https://h/right" ; trailing comment\n',
        '[remote "origin"]\n\turl = https://h/\\\nright # continued\n',
        '[remote "origin"]\r\n\turl = https://h/right\r\n',
        '[remote "origin"]\n# url = https://h/commented\n\turl = https://h/right\n',
        '[remote "origin"]\n\turl = https://h/right\n\turl = https://h/second\n',
        '[remote "Origin"]\n\turl = https://h/wrong\n[remote "origin"]\n\turl = https://h/right\n',
        '[remote "origin"]\n\tmirror\n\tfetch = +refs/*:refs/*\n\turl = https://h/right\n',
        '[remote "origin"]\n\tfetch = +x\n[remote "up"]\n\turl = https://h/wrong\n'
        '[remote "origin"]\n\turl = https://h/right\n',
    ],
)
def test_config_syntax_variants_read_like_git(repo: Path, git: Git, config: str) -> None:
    (repo / ".git" / "config").write_text("[core]\n\tbare = false\n" + config)
    assert git(repo, "remote", "get-url", "origin") == "https://h/right"

    assert detect_git(repo)["git_repo"] == "https://h/right"


def test_not_a_repository(tmp_path: Path, git: Git) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    if git.run(outside, "rev-parse", "--git-dir", check=False).returncode == 0:
        pytest.skip("the temporary directory is itself inside a git repository")

    assert detect_git(outside) == {}
    assert detect_git(tmp_path / "does" / "not" / "exist") == {}


@pytest.mark.parametrize(
    "head", ["garbage\n", "ref: heads/main\n", "ref: refs/heads/../../config\n", "0123abc\n", ""]
)
def test_corrupt_head_gives_nothing(repo: Path, git: Git, head: str) -> None:
    (repo / ".git" / "HEAD").write_text(head)

    assert detect_git(repo) == {}


def test_corrupt_head_is_refused_by_git_as_well(repo: Path, git: Git) -> None:
    (repo / ".git" / "HEAD").write_text("garbage\n")

    assert git.run(repo, "rev-parse", "HEAD", check=False).returncode != 0
    assert detect_git(repo) == {}


def test_unreadable_files_never_raise(repo: Path) -> None:
    head = repo / ".git" / "HEAD"
    head.unlink()
    head.mkdir()  # reading it fails with IsADirectoryError

    assert detect_git(repo) == {}


def test_broken_gitfile_gives_nothing(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".git").write_text("not a gitfile\n")

    assert detect_git(checkout) == {}


def test_gitfile_to_a_missing_directory_gives_nothing(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".git").write_text("gitdir: ../nowhere\n")

    assert detect_git(checkout) == {}


def test_sha256_repository_reports_the_branch_but_not_the_long_hash(
    tmp_path: Path, git: Git
) -> None:
    path = git.init(tmp_path / "sha256", "--object-format=sha256")
    git.commit(path)
    assert len(git(path, "rev-parse", "HEAD")) == 64

    # The server accepts 7-40 hex digits: a 64-digit hash would get the whole run refused.
    assert detect_git(path) == {"git_branch": "main"}
