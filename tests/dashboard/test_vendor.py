"""The vendored front-end files are exactly the pinned npm releases of the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import local_telemetry.dashboard.web as web

VENDOR = web.STATIC / "vendor"


def manifest() -> dict[str, object]:
    loaded: dict[str, object] = json.loads((VENDOR / "manifest.json").read_text())
    return loaded


def test_every_vendored_file_matches_its_pinned_sha256() -> None:
    listed: set[str] = set()
    for package in manifest()["packages"]:  # type: ignore[attr-defined]
        assert package["version"].count(".") == 2  # an exact version, not a range
        assert package["integrity"].startswith("sha512-")
        for entry in package["files"]:
            data = (VENDOR / entry["to"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["to"]
            assert package["version"] in entry["to"] or entry["to"].endswith("LICENSE")
            listed.add(entry["to"])
    on_disk = {path.name for path in VENDOR.iterdir()} - {"manifest.json"}
    assert on_disk == listed  # nothing vendored that the manifest does not pin


def test_pages_load_the_pinned_files() -> None:
    base = (Path(web.TEMPLATES) / "base.html").read_text()
    for package in manifest()["packages"]:  # type: ignore[attr-defined]
        for entry in package["files"]:
            if entry["to"].endswith((".js", ".css")):
                assert f"/static/vendor/{entry['to']}" in base
