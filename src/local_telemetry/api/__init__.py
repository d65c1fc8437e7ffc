"""The HTTP API: ``create_app(settings)`` builds a FastAPI application."""

from local_telemetry.api.app import create_app

__all__ = ["create_app"]
