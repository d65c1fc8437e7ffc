"""Every benchmark in ``bench/`` still starts: its imports resolve and ``--help`` works.

The benchmarks are not run by the suite (they measure, and take minutes); this catches
a refactor that breaks one of them (a moved name, a renamed module) before someone
needs its figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py"))


def test_there_are_benchmarks() -> None:
    assert "inprocess.py" in SCRIPTS
    assert "flood.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts(script: str) -> None:
    result = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()
