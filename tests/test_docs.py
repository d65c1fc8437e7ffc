"""The README's settings table is the one declared in config.py."""

from __future__ import annotations

from pathlib import Path

from local_telemetry.config import describe_settings, settings_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting_with_its_default() -> None:
    text = README.read_text()
    assert settings_table_markdown() in text, "run ./dev docs"
    for env, _, _ in describe_settings():
        assert f"| `{env}` |" in text, env


def test_readme_opens_with_the_two_commands() -> None:
    head = README.read_text()[:400]
    assert "./dev serve" in head
    assert "./dev test" in head
