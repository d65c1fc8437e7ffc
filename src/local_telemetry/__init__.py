"""Local Telemetry: self-hosted run telemetry for AI agents and automated jobs."""

__version__ = "0.1.0"
API_VERSION = "3.0.0"
"""Version of the HTTP API contract this server implements (the v3 client guide)."""

__all__ = ["API_VERSION", "AsyncTelemetryClient", "TelemetryClient", "__version__"]

_SDK_NAMES = frozenset({"TelemetryClient", "AsyncTelemetryClient"})


def __getattr__(name: str) -> object:
    # The SDK is re-exported lazily: `import local_telemetry` stays light for the server.
    if name in _SDK_NAMES:
        from local_telemetry import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
