"""The dashboard's page modules, in the order their routes are matched."""

from __future__ import annotations

from fastapi.routing import APIRouter


def routers() -> list[APIRouter]:
    """Every page module's router."""
    return []
