"""Every server setting, declared once.

Each field of :class:`Settings` is one setting: its name gives the environment variable
(``TELEMETRY_`` + upper-case name), its default and description are what
``local-telemetry serve --help`` and the README table show. Names and meanings of the
v3 guide's reference implementation are kept (``TELEMETRY_DB_PATH``,
``TELEMETRY_API_PORT``, ``TELEMETRY_API_AUTH_ENABLED`` ...).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from local_telemetry.durations import parse_duration

ENV_PREFIX = "TELEMETRY_"
STALE_TIMEOUT_UNITS = "smhdw"
"""Units a stale-run age may use (seconds too: tests and short-lived jobs need them)."""

GitPlatform = Literal["github", "gitlab", "bitbucket"]
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class ConfigurationError(ValueError):
    """A setting has a value the server cannot run with; the message says how to fix it."""


class Settings(BaseSettings):
    """Server configuration, read from ``TELEMETRY_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    db_path: Path = Field(
        Path("./data/telemetry.sqlite"),
        description="SQLite database file; its directory is created if missing.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "Database URL: sqlite:///path or postgresql://user:pass@host:port/db; "
            "overrides TELEMETRY_DB_PATH when set."
        ),
    )
    api_host: str = Field("127.0.0.1", description="Address the server binds to.")
    api_port: int = Field(8765, ge=1, le=65535, description="TCP port the server listens on.")
    api_workers: int = Field(
        1, ge=1, description="Server worker processes (more than 1 needs PostgreSQL)."
    )
    db_journal_mode: Literal["WAL", "DELETE", "TRUNCATE", "PERSIST"] = Field(
        "WAL", description="SQLite journal mode (durable modes only)."
    )
    db_synchronous: Literal["FULL", "EXTRA"] = Field(
        "FULL", description="SQLite synchronous level; FULL or EXTRA keep every 2xx durable."
    )
    db_busy_timeout_ms: int = Field(
        5000, ge=0, description="How long SQLite waits for a lock held by another process."
    )
    api_auth_enabled: bool = Field(
        False,
        description=(
            "Require 'Authorization: Bearer <key>' on every /api/ request, /metrics and "
            "/version, and a sign-in on the dashboard (/health and the docs stay public)."
        ),
    )
    api_auth_token: str | None = Field(
        None,
        description=(
            "A bearer token accepted as an admin key when auth is enabled (required then: "
            "it creates the scoped API keys)."
        ),
    )
    api_auth_public_reads: bool = Field(
        False,
        description="With auth enabled, let GET/HEAD requests through without a key (v3 guide).",
    )
    allow_unauthenticated_network: bool = Field(
        False,
        description=(
            "Let `serve` bind a non-loopback address with auth disabled "
            "(same as --allow-unauthenticated-network)."
        ),
    )
    rate_limit_enabled: bool = Field(
        False,
        description=(
            "Limit API requests per API key (auth on) or per client address (see 'Rate limits')."
        ),
    )
    rate_limit_rpm: int = Field(
        60, ge=1, description="Requests per minute per API key or client address."
    )
    rate_limit_max_buckets: int = Field(
        10_000,
        ge=16,
        description=(
            "Most API keys and client addresses the rate limiter remembers; the least "
            "recently seen is forgotten first (bounds memory under floods of random keys)."
        ),
    )
    trusted_proxies: str = Field(
        "",
        description=(
            "Reverse proxies (IPs or CIDRs, comma separated) whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed; empty: trust nobody."
        ),
    )
    cors_origins: str = Field(
        "",
        description=(
            "Origins allowed to call the API from a browser (exact, comma separated, e.g. "
            "'https://ci.example.com'; '*' only with auth on); empty: CORS off."
        ),
    )
    git_hosts: str = Field(
        "",
        description=(
            "Self-hosted git hosts and their platform, comma separated, "
            "e.g. 'git.example.com=gitlab,code.corp=github'."
        ),
    )
    max_run_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest accepted body for one run (413 above)."
    )
    max_batch_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest accepted body for a batch (413 above)."
    )
    max_batch_items: int = Field(
        10_000, ge=1, description="Most runs accepted in one batch (422 above)."
    )
    ingest_queue_size: int = Field(
        10_000, ge=1, description="Writes waiting for the writer before new ones get 503."
    )
    max_concurrent_requests: int = Field(
        128,
        ge=1,
        description=(
            "Requests handled at once; beyond it a fast 503 with Retry-After: 1 (/health is "
            "exempt)."
        ),
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Time a client has to send a request's headers before a 408 and close.",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Time a client has to send a request's whole body before a 408 and close.",
    )
    shutdown_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM, how long requests in flight may take before they are cut.",
    )
    group_commit: bool = Field(
        True,
        description="Commit queued writes together (off: one commit per write, for comparison).",
    )
    max_commit_group: int = Field(512, ge=1, description="Most writes committed together.")
    fast_paths: bool = Field(
        True,
        description="Serve the run endpoints without FastAPI routing (same answers, faster).",
    )
    metadata_cache_seconds: float = Field(
        300.0, ge=0, description="How long /api/v1/metadata answers from its cache."
    )
    prometheus_max_agents: int = Field(
        100,
        ge=1,
        description=(
            "Agents with their own label in /metrics/prometheus (those with the most runs "
            'in 24 h); the rest are reported as agent="other".'
        ),
    )
    prometheus_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long /metrics/prometheus reuses its per-agent and size figures.",
    )
    otlp_root_operation: str = Field(
        "invoke_agent",
        min_length=1,
        description=(
            "POST /v1/traces: spans whose gen_ai.operation.name equals this become runs; "
            "other spans become events of their run."
        ),
    )
    otlp_job_type_attribute: str = Field(
        "gen_ai.operation.name",
        min_length=1,
        description="POST /v1/traces: span attribute a run's job_type is read from.",
    )
    otlp_max_pending_spans: int = Field(
        100_000,
        ge=0,
        description=(
            "POST /v1/traces: most spans kept waiting for their root run; past it, such "
            "spans are rejected (partial_success)."
        ),
    )
    pii_scrub: bool = Field(
        False,
        description=(
            "Scrub PII (e-mails, phones, card numbers, IPs, tokens/API keys) from free-text "
            "fields and JSON values before storage (see 'PII scrubbing')."
        ),
    )
    pii_extra_patterns: str = Field(
        "",
        description=(
            "Your own PII regexes as a JSON array of strings; matches become [redacted] "
            "(also when TELEMETRY_PII_SCRUB is false)."
        ),
    )
    alert_interval_seconds: float = Field(
        60.0, ge=0, description="How often alert rules are evaluated (0: never)."
    )
    alert_webhooks: str = Field(
        "",
        description=(
            "URLs that receive every alert transition as a JSON POST, comma separated "
            "(retried in the background, never blocking ingestion)."
        ),
    )
    retention_payload_days: int | None = Field(
        None,
        ge=1,
        description=(
            "Blank raw payloads (error_details, metrics_json, context_json, events, QC "
            "notes) of runs that started more than this many days ago; KPI numbers stay."
        ),
    )
    retention_run_days: int | None = Field(
        None, ge=1, description="Delete whole runs that started more than this many days ago."
    )
    retention_interval_seconds: float = Field(
        3600.0, ge=0, description="How often the retention sweeper runs (0: never)."
    )
    stale_run_timeout: str | None = Field(
        None,
        description=(
            "Close runs still `running` with no update for this long (e.g. 24h; units "
            "s, m, h, d, w), checked every quarter of it, at most every 5 minutes (unset: "
            "off)."
        ),
    )
    stale_run_status: Literal["timeout", "failure", "cancelled"] = Field(
        "timeout", description="Status a stale run is closed with: timeout, failure or cancelled."
    )
    weekly_export_dir: Path | None = Field(
        None, description="Directory for the scheduled weekly KPI export (unset: off)."
    )
    weekly_export_format: Literal["csv", "jsonl", "parquet"] = Field(
        "csv", description="File format of the weekly KPI export."
    )
    weekly_export_weekday: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = Field("monday", description="Day of the week the weekly KPI export is written.")
    weekly_export_hour: int = Field(
        6, ge=0, le=23, description="Hour (0-23, in TELEMETRY_WEEKLY_EXPORT_TZ) of the export."
    )
    weekly_export_tz: str = Field(
        "UTC", description="IANA time zone of the weekly export's schedule and day boundaries."
    )
    dashboard_refresh_seconds: float = Field(
        10.0,
        ge=0,
        description=(
            "How old the dashboard's overview and agent figures may get: views are rebuilt "
            "in the background (0: computed on every request)."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Server log level."
    )

    @field_validator("db_journal_mode", "db_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_level", "weekly_export_weekday", "weekly_export_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("stale_run_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None  # an empty variable means unset
            parse_duration(value, units=STALE_TIMEOUT_UNITS)  # ValueError names the form
            return value.strip()
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.api_auth_enabled and not self.api_auth_token:
            raise ValueError(
                "TELEMETRY_API_AUTH_ENABLED is true but TELEMETRY_API_AUTH_TOKEN is empty"
            )
        if self.database_url is not None and not self.database_url.startswith(
            ("sqlite:///", *POSTGRES_SCHEMES)
        ):
            raise ValueError(
                "TELEMETRY_DATABASE_URL must be sqlite:///path or postgresql://user:pass@host:port/db"
            )
        if self.api_workers != 1 and not self.uses_postgres:
            raise ValueError(
                "TELEMETRY_API_WORKERS must be 1 with SQLite: one process owns the single "
                "writer of the database file (use PostgreSQL for several processes)"
            )
        parse_git_hosts(self.git_hosts)
        from local_telemetry.pii import parse_extra_patterns

        parse_extra_patterns(self.pii_extra_patterns)
        parse_webhook_urls(self.alert_webhooks)
        parse_trusted_proxies(self.trusted_proxies)
        origins = parse_cors_origins(self.cors_origins)
        if "*" in origins and not self.api_auth_enabled:
            raise ValueError(
                "TELEMETRY_CORS_ORIGINS '*' needs TELEMETRY_API_AUTH_ENABLED=true: without "
                "auth any web page you visit could read and write your telemetry; list "
                "the origins instead"
            )
        _check_zone(self.weekly_export_tz, "TELEMETRY_WEEKLY_EXPORT_TZ")
        return self

    @property
    def uses_postgres(self) -> bool:
        """Whether ``database_url`` names a PostgreSQL database."""
        return self.database_url is not None and self.database_url.startswith(POSTGRES_SCHEMES)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file in use: from ``database_url`` if set, else ``db_path``."""
        if self.database_url is not None:
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.db_path

    @property
    def stale_run_timeout_span(self) -> timedelta | None:
        """``TELEMETRY_STALE_RUN_TIMEOUT`` parsed (``None``: stale-run cleanup is off)."""
        if self.stale_run_timeout is None:
            return None
        return parse_duration(self.stale_run_timeout, units=STALE_TIMEOUT_UNITS)

    @property
    def alert_webhook_urls(self) -> list[str]:
        """``TELEMETRY_ALERT_WEBHOOKS`` parsed: the receivers' URLs, in order."""
        return parse_webhook_urls(self.alert_webhooks)

    @property
    def trusted_proxy_list(self) -> list[str]:
        """``TELEMETRY_TRUSTED_PROXIES`` parsed: IP addresses and CIDR networks, in order."""
        return parse_trusted_proxies(self.trusted_proxies)

    @property
    def cors_origin_list(self) -> list[str]:
        """``TELEMETRY_CORS_ORIGINS`` parsed: exact origins (or ``*``), in order."""
        return parse_cors_origins(self.cors_origins)

    @property
    def git_host_map(self) -> dict[str, GitPlatform]:
        """``TELEMETRY_GIT_HOSTS`` parsed: host name (lower case) to platform."""
        return parse_git_hosts(self.git_hosts)


LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only:
    a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``. Any other name
    counts as a network address (it may resolve to one)."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse (:class:`ConfigurationError`) to serve on a network address without auth,
    unless ``allow_unauthenticated_network`` says the operator means it."""
    if settings.api_auth_enabled or settings.allow_unauthenticated_network:
        return
    if is_loopback(settings.api_host):
        return
    raise ConfigurationError(
        f"refusing to bind {settings.api_host!r} with auth disabled: anyone on the network "
        "could read and write your telemetry. Enable auth (TELEMETRY_API_AUTH_ENABLED=true "
        "and TELEMETRY_API_AUTH_TOKEN=<a long random secret>, then create scoped keys with "
        "`local-telemetry keys create`), bind 127.0.0.1, or pass "
        "--allow-unauthenticated-network (TELEMETRY_ALLOW_UNAUTHENTICATED_NETWORK=true) if "
        "the network is trusted"
    )


def parse_git_hosts(spec: str) -> dict[str, GitPlatform]:
    """Parse ``host=platform,host=platform``; raise ``ValueError`` on a malformed entry."""
    result: dict[str, GitPlatform] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        host, sep, platform = entry.partition("=")
        platform = platform.strip().lower()
        if not sep or not host.strip() or platform not in ("github", "gitlab", "bitbucket"):
            raise ValueError(
                f"TELEMETRY_GIT_HOSTS entry {entry!r} must look like host=github|gitlab|bitbucket"
            )
        result[host.strip().lower()] = platform  # type: ignore[assignment]
    return result


def parse_webhook_urls(spec: str) -> list[str]:
    """Parse comma-separated http(s) URLs; raise ``ValueError`` on anything else."""
    from urllib.parse import urlsplit

    urls: list[str] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"TELEMETRY_ALERT_WEBHOOKS entry {entry!r} must be an http(s) URL")
        urls.append(entry)
    return urls


def parse_trusted_proxies(spec: str) -> list[str]:
    """Parse comma-separated IP addresses and CIDR networks; raise ``ValueError`` on
    anything else (a host name could resolve to anyone)."""
    import ipaddress

    entries: list[str] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        try:
            if "/" in entry:
                entries.append(str(ipaddress.ip_network(entry, strict=False)))
            else:
                entries.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise ValueError(
                f"TELEMETRY_TRUSTED_PROXIES entry {entry!r} must be an IP address or a "
                "CIDR network such as 10.0.0.0/8"
            ) from None
    return entries


def parse_cors_origins(spec: str) -> list[str]:
    """Parse comma-separated origins (``scheme://host[:port]``, no path) or ``*``; raise
    ``ValueError`` on anything else (browsers compare origins exactly)."""
    from urllib.parse import urlsplit

    origins: list[str] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        if entry == "*":
            origins.append(entry)
            continue
        parts = urlsplit(entry)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise ValueError(
                f"TELEMETRY_CORS_ORIGINS entry {entry!r} must be an origin like "
                "https://ci.example.com (scheme, host, optional port; no path) or *"
            )
        origins.append(entry.lower())
    return origins


def _check_zone(name: str, variable: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{variable} {name!r} is not an IANA time zone name") from exc


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with ``overrides`` taking precedence.

    Raises :class:`ConfigurationError` with a readable message when a value is invalid.
    """
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{ENV_PREFIX}{'_'.join(str(p) for p in err['loc']).upper()}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigurationError(problems) from exc


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) of every setting, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None:
            shown = ""
        elif isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, Path) and not default.is_absolute():
            shown = f"./{default}"
        else:
            shown = str(default)
        rows.append((ENV_PREFIX + name.upper(), shown, field.description or ""))
    return rows


def settings_table_markdown() -> str:
    """The README's settings table, generated from :func:`describe_settings`."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for env, default, description in describe_settings():
        shown = f"`{default}`" if default else "unset"
        lines.append(f"| `{env}` | {shown} | {description} |")
    return "\n".join(lines)
