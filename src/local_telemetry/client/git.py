"""Git facts about a working directory, read from the files under ``.git``.

``detect_git()`` fills ``git_repo``, ``git_branch`` and ``git_commit_hash`` of a run
without running ``git`` (no subprocess: it is fast, works where git is not installed and
cannot hang on a credential prompt). It reads what ``git rev-parse HEAD``,
``git branch --show-current`` and ``git remote get-url origin`` would print:

- the repository is found by walking up to a ``.git`` directory, or a ``.git`` file
  (``gitdir: ...``, as in linked worktrees and submodules); a linked worktree's
  ``commondir`` file names the directory that holds the shared ``config`` and refs;
- ``HEAD`` is either ``ref: refs/heads/<branch>`` (the ref is resolved from its loose file,
  else from ``packed-refs``) or a detached commit hash (no branch then);
- ``git_repo`` is ``remote.origin.url`` from the repository's ``config``, with credentials
  removed from URLs (``https://user:token@host/x`` becomes ``https://host/x``).

Not followed, on purpose (each would need much of git): ``include``/``includeIf`` and
``url.<base>.insteadOf`` of the config, ``GIT_DIR``-style environment variables and the
binary ``reftable`` ref format (its repositories report only ``git_repo``). A SHA-256
repository's 64-digit hashes are left out, as the server accepts 7-40 hex digits.

Nothing here raises: anything unexpected (a corrupt ``HEAD``, an unreadable file) gives
``{}``, logged at debug level, because git metadata must never fail a run.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger("local_telemetry")

_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_SMALL_FILE = 1 << 20  # HEAD, loose refs, gitfiles, config: a few bytes to kilobytes
_MAX_SYMREF_DEPTH = 5  # git's own limit for chains of symbolic refs
_PER_WORKTREE_REFS = ("refs/bisect/", "refs/worktree/", "refs/rewritten/")
_CREDENTIAL_SCHEMES = ("http", "https", "ftp", "ftps")
_CONFIG_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}
_CONFIG_SPACE = " \t\v\f\r"


class _CorruptRepository(Exception):
    """A file git itself would refuse (e.g. a ``HEAD`` that is neither a ref nor a hash)."""


def detect_git(start: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Return the ``git_repo``, ``git_branch`` and ``git_commit_hash`` that can be read.

    ``start`` is a directory (or a file) inside the working tree, the current directory by
    default. Keys that cannot be determined are left out: no ``git_branch`` on a detached
    ``HEAD``, no ``git_commit_hash`` on a branch without commits, no ``git_repo`` without
    an ``origin`` remote. Outside a repository, or on any error, the result is ``{}``.

    >>> detect_git("/tmp/not-a-repository")
    {}
    """
    try:
        return _detect(Path(os.getcwd() if start is None else os.fspath(start)))
    except Exception:  # git metadata is optional: never fail the run for it
        logger.debug("git auto-detection failed", exc_info=True)
        return {}


def remove_credentials(url: str) -> str:
    """``url`` without the password, and for http(s) without the user name either.

    The scp-like form (``git@host:org/repo.git``) and local paths are returned unchanged;
    ``ssh://`` URLs keep their user name (``git@``), which is not a secret.

    >>> remove_credentials("https://user:token@github.com/org/repo.git")
    'https://github.com/org/repo.git'
    >>> remove_credentials("ssh://git:secret@host/repo")
    'ssh://git@host/repo'
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority_end = len(rest)
    for delimiter in "/?#":
        position = rest.find(delimiter)
        if position != -1:
            authority_end = min(authority_end, position)
    authority, path = rest[:authority_end], rest[authority_end:]
    user_info, at, host = authority.rpartition("@")
    if not at:
        return url
    if scheme.lower() in _CREDENTIAL_SCHEMES:
        return f"{scheme}://{host}{path}"
    user = user_info.partition(":")[0]
    return f"{scheme}://{user}@{host}{path}" if user else f"{scheme}://{host}{path}"


def _detect(start: Path) -> dict[str, str]:
    git_dir = _find_git_dir(start.absolute())
    if git_dir is None:
        return {}
    common_dir = _common_dir(git_dir)
    try:
        facts = _head_facts(git_dir, common_dir)
    except _CorruptRepository as exc:
        logger.debug("git auto-detection: %s", exc)
        return {}
    origin = _origin_url(common_dir / "config")
    if origin:
        facts["git_repo"] = remove_credentials(origin)
    return facts


def _find_git_dir(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        if dot_git.is_file():
            return _follow_gitfile(dot_git)
        # Like git, a ".git" directory without HEAD does not stop the search upwards.
        if dot_git.is_dir() and (dot_git / "HEAD").is_file():
            return dot_git
    return None


def _follow_gitfile(gitfile: Path) -> Path:
    content = _read_small(gitfile).strip()
    if not content.startswith("gitdir:"):
        raise _CorruptRepository(f"{gitfile} is not a gitfile")
    target = Path(content.removeprefix("gitdir:").strip())
    if not target.is_absolute():
        target = gitfile.parent / target
    return target.resolve()


def _common_dir(git_dir: Path) -> Path:
    """The directory of the shared config and refs (a linked worktree names it)."""
    commondir_file = git_dir / "commondir"
    if not commondir_file.is_file():
        return git_dir
    target = Path(_read_small(commondir_file).strip())
    return (target if target.is_absolute() else git_dir / target).resolve()


def _head_facts(git_dir: Path, common_dir: Path) -> dict[str, str]:
    head = _read_small(git_dir / "HEAD").strip()
    facts: dict[str, str] = {}
    if head.startswith("ref:"):
        ref = head.removeprefix("ref:").strip()
        _check_ref_name(ref)
        if ref == "refs/heads/.invalid":  # placeholder HEAD of the reftable format
            return facts
        if ref.startswith("refs/heads/"):
            facts["git_branch"] = ref.removeprefix("refs/heads/")
        commit = _resolve_ref(git_dir, common_dir, ref, depth=0)
    elif _SHA1.fullmatch(head) or _SHA256.fullmatch(head):
        commit = head
    else:
        raise _CorruptRepository(f"unreadable HEAD in {git_dir}")
    if commit is not None and _SHA1.fullmatch(commit):
        facts["git_commit_hash"] = commit
    return facts


def _check_ref_name(ref: str) -> None:
    parts = ref.split("/")
    if parts[0] != "refs" or len(parts) < 2 or any(part in ("", ".", "..") for part in parts):
        raise _CorruptRepository(f"unexpected ref name {ref!r}")
    if any(character.isspace() or character == "\\" for character in ref):
        raise _CorruptRepository(f"unexpected ref name {ref!r}")


def _resolve_ref(git_dir: Path, common_dir: Path, ref: str, depth: int) -> str | None:
    """The commit a ref points to: loose file first, then ``packed-refs``, as git does."""
    if depth > _MAX_SYMREF_DEPTH:
        raise _CorruptRepository(f"symbolic ref loop at {ref!r}")
    _check_ref_name(ref)
    base = git_dir if ref.startswith(_PER_WORKTREE_REFS) else common_dir
    loose = base / ref
    if loose.is_file():
        content = _read_small(loose).strip()
        if content.startswith("ref:"):
            target = content.removeprefix("ref:").strip()
            return _resolve_ref(git_dir, common_dir, target, depth + 1)
        return content if _SHA1.fullmatch(content) or _SHA256.fullmatch(content) else None
    return _packed_ref(common_dir / "packed-refs", ref)


def _packed_ref(packed_refs: Path, ref: str) -> str | None:
    try:
        with packed_refs.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                # "# pack-refs with: ..." header; "^<hash>" peels the annotated tag above.
                if line.startswith(("#", "^")):
                    continue
                commit, _, name = line.rstrip("\r\n").partition(" ")
                if name == ref:
                    return commit if _SHA1.fullmatch(commit) or _SHA256.fullmatch(commit) else None
    except FileNotFoundError:
        pass
    return None


def _origin_url(config_file: Path) -> str | None:
    try:
        text = _read_small(config_file)
    except FileNotFoundError:
        return None
    for url in _config_values(text, section="remote", subsection="origin", key="url"):
        if url and "\x00" not in url:
            return url  # like "git remote get-url": the first of several urls
    return None


def _config_values(text: str, section: str, subsection: str, key: str) -> list[str]:
    """Every value of ``section.subsection.key`` in git config syntax, tolerantly parsed.

    Follows git's ``config.c``: names are case-insensitive except a quoted subsection,
    values may be quoted, escaped and continued with a trailing backslash, ``#`` and ``;``
    start comments outside quotes, and a variable may follow its ``[section]`` on the same
    line. A line git would reject is skipped instead of failing the whole file.
    """
    text = text.replace("\r\n", "\n")
    values: list[str] = []
    in_section = False
    position = 0
    while position < len(text):
        character = text[position]
        if character in _CONFIG_SPACE or character == "\n":
            position += 1
        elif character in "#;":
            position = _line_end(text, position)
        elif character == "[":
            header, position = _parse_section_header(text, position + 1)
            in_section = header == (section, subsection)
        else:
            name_end = position
            while name_end < len(text) and (text[name_end].isalnum() or text[name_end] == "-"):
                name_end += 1
            name = text[position:name_end].lower()
            position = name_end
            while position < len(text) and text[position] in _CONFIG_SPACE:
                position += 1
            if not name or position >= len(text) or text[position] != "=":
                position = _line_end(text, position)  # garbage, or a boolean without value
                continue
            value, position = _parse_config_value(text, position + 1)
            if in_section and name == key and value is not None:
                values.append(value)
    return values


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end == -1 else end + 1


def _parse_section_header(text: str, position: int) -> tuple[tuple[str, str] | None, int]:
    """Parse what follows ``[``: ``name "subsection"]`` or the old ``name.subsection]``."""
    closing = text.find("]", position)
    newline = text.find("\n", position)
    if closing == -1 or (newline != -1 and newline < closing and '"' not in text[position:newline]):
        return None, _line_end(text, position)
    name_end = position
    while name_end < len(text) and (text[name_end].isalnum() or text[name_end] in "-."):
        name_end += 1
    name = text[position:name_end].lower()
    position = name_end
    if "." in name:  # deprecated [section.subsection]: the subsection is case-insensitive
        section, _, subsection = name.partition(".")
        return _close_header(text, position, (section, subsection))
    while position < len(text) and text[position] in _CONFIG_SPACE:
        position += 1
    if position < len(text) and text[position] == '"':
        subsection_characters: list[str] = []
        position += 1
        while position < len(text) and text[position] not in '"\n':
            if text[position] == "\\" and position + 1 < len(text):
                position += 1
            subsection_characters.append(text[position])
            position += 1
        if position >= len(text) or text[position] != '"':
            return None, _line_end(text, position)
        return _close_header(text, position + 1, (name, "".join(subsection_characters)))
    return _close_header(text, position, (name, ""))


def _close_header(
    text: str, position: int, header: tuple[str, str]
) -> tuple[tuple[str, str] | None, int]:
    while position < len(text) and text[position] in _CONFIG_SPACE:
        position += 1
    if position < len(text) and text[position] == "]":
        return header, position + 1  # a variable may follow on the same line
    return None, _line_end(text, position)


def _parse_config_value(text: str, position: int) -> tuple[str | None, int]:
    """One value after ``=`` (git's ``parse_value``); ``None`` for one git would reject."""
    characters: list[str] = []
    quoted, in_comment, valid = False, False, True
    spaces = 0
    while position < len(text):
        character = text[position]
        position += 1
        if character == "\n":
            if quoted:
                valid = False  # an unterminated quote: git rejects the line
            break
        if in_comment:
            continue
        if character in _CONFIG_SPACE and not quoted:
            if characters:
                spaces += 1  # kept only when more of the value follows
            continue
        if not quoted and character in "#;":
            in_comment = True
            continue
        characters.extend(" " * spaces)
        spaces = 0
        if character == "\\":
            escaped = text[position] if position < len(text) else ""
            position += 1
            if escaped == "\n":
                continue  # a continuation line
            if escaped not in _CONFIG_ESCAPES:
                valid = False
                position = _line_end(text, position - 1)
                break
            characters.append(_CONFIG_ESCAPES[escaped])
        elif character == '"':
            quoted = not quoted
        else:
            characters.append(character)
    return ("".join(characters) if valid else None), position


def _read_small(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(_MAX_SMALL_FILE + 1)
    if len(data) > _MAX_SMALL_FILE:
        raise _CorruptRepository(f"{path} is larger than {_MAX_SMALL_FILE} bytes")
    return data.decode("utf-8", errors="replace")
