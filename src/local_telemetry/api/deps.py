"""What every handler needs, kept on ``app.state`` by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from local_telemetry.api.metadata_cache import MetadataCache
from local_telemetry.config import GitPlatform, Settings
from local_telemetry.ingest import GroupCommitWriter
from local_telemetry.storage.base import Store


@dataclass
class AppState:
    """The running application's parts."""

    settings: Settings
    store: Store
    writer: GroupCommitWriter
    metadata: MetadataCache
    git_hosts: dict[str, GitPlatform]


def state(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    app_state: AppState = request.app.state.local_telemetry
    return app_state
