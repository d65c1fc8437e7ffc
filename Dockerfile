# syntax=docker/dockerfile:1
# Local Telemetry API server. Build: `docker build -t local-telemetry .`
# Run alone (SQLite in the /data volume), reachable from this machine only:
#   docker run -p 127.0.0.1:8765:8765 -v lt-data:/data local-telemetry
# Reachable from other machines: turn auth on (README "Auth, API keys and rate limits"):
#   docker run -p 8765:8765 -v lt-data:/data -e TELEMETRY_API_AUTH_ENABLED=true \
#     -e TELEMETRY_API_AUTH_TOKEN="$(openssl rand -hex 32)" local-telemetry
# At scale (PostgreSQL, several processes): see docker-compose.yml and README "Running at scale".

# --- build stage: a wheel of the package from this source tree -----------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime stage: the wheel and its dependencies, nothing else ----------------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TELEMETRY_API_HOST=0.0.0.0 \
    TELEMETRY_API_PORT=8765 \
    TELEMETRY_DB_PATH=/data/telemetry.sqlite \
    TELEMETRY_ALLOW_UNAUTHENTICATED_NETWORK=true
# 0.0.0.0 is the container's own network namespace: the only way a published port
# reaches the server, so serve's refusal of non-loopback binds without auth is lifted
# here. Who can connect is decided by `-p` (publish on 127.0.0.1 to stay local) or by
# TELEMETRY_API_AUTH_ENABLED=true (then keys are required whatever this says).

# A fixed non-root user; /data holds the SQLite file when no PostgreSQL URL is set.
RUN groupadd --system --gid 10001 telemetry \
    && useradd --system --uid 10001 --gid telemetry --home-dir /data --shell /usr/sbin/nologin telemetry \
    && mkdir -p /data \
    && chown telemetry:telemetry /data

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# Numeric uid:gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765

# No curl in slim images: ask /health with Python's urllib (non-2xx or no answer -> exit 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TELEMETRY_API_PORT', '8765') + '/health', timeout=4)"]

# Other commands: docker run --entrypoint local-telemetry IMAGE migrate-data --help
ENTRYPOINT ["local-telemetry", "serve"]
