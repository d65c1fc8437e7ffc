"""The dashboard's page modules, in the order their routes are matched."""

from __future__ import annotations

from fastapi.routing import APIRouter


def routers() -> list[APIRouter]:
    """Every page module's router."""
    from local_telemetry.dashboard import agents, alerts, overview
    from local_telemetry.dashboard import runs as runs_page

    return [overview.router, agents.router, runs_page.router, alerts.router]
