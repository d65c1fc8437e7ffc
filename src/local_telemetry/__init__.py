"""Local Telemetry: self-hosted run telemetry for AI agents and automated jobs."""

__version__ = "0.1.0"
API_VERSION = "3.0.0"
"""Version of the HTTP API contract this server implements (the v3 client guide)."""

__all__ = ["API_VERSION", "__version__"]
