# One recipe for every Python service; build from the repository root:
#   docker build --build-arg SERVICE=user-service -t titanium/user-service .
# SERVICE is a workspace member (its folder name); its console script of the same name starts it.
# Plain Dockerfile syntax only (no RUN --mount, no heredocs), so that classic builders and buildah 1.28 build it too.

# Chart.js for the dashboard, exactly as dashboard-ui/package-lock.json pins it.
FROM node:24-bookworm-slim AS chartjs
WORKDIR /build
COPY dashboard-ui/package.json dashboard-ui/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11-slim-bookworm AS builder
# strip: the wheels' extension modules carry debug symbols (uvloop's 13.6 MB are 1.6 MB stripped).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
ARG SERVICE
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Step 1, the third-party dependencies, from the lock and the workspace's pyproject files only: a source change
# leaves this layer as it is. Every workspace member is listed (tests/deploy checks the list against pyproject.toml).
COPY pyproject.toml uv.lock ./
COPY common/pyproject.toml common/
COPY load-balancer/pyproject.toml load-balancer/
COPY api-gateway/pyproject.toml api-gateway/
COPY auth-service/pyproject.toml auth-service/
COPY user-service/pyproject.toml user-service/
COPY blog-service/pyproject.toml blog-service/
COPY cluster-monitor/pyproject.toml cluster-monitor/
COPY edge-config/pyproject.toml edge-config/
COPY ops-mcp/pyproject.toml ops-mcp/
COPY dashboard-ui/pyproject.toml dashboard-ui/
COPY dev/pyproject.toml dev/
RUN test -n "$SERVICE" \
    && uv sync --frozen --no-dev --no-editable --no-install-workspace --package "$SERVICE"
# Step 2, the workspace packages, installed as wheels (no links back into /src), with their static files and
# migrations as package data; the dashboard's wheel takes Chart.js from node_modules.
COPY . .
COPY --from=chartjs /build/node_modules/chart.js/dist dashboard-ui/node_modules/chart.js/dist
RUN uv sync --frozen --no-dev --no-editable --package "$SERVICE" \
    && find /opt/venv -name "*.so" -exec strip --strip-unneeded {} + \
    && ln -s "$SERVICE" /opt/venv/bin/titanium-service

FROM python:3.11-slim-bookworm
ARG SERVICE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="titanium/${SERVICE}" \
      org.opencontainers.image.description="Titanium ${SERVICE}, one service of the Titanium microservice suite" \
      org.opencontainers.image.vendor="Titanium" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"
RUN groupadd --system --gid 10001 titanium \
    && useradd --system --no-log-init --uid 10001 --gid titanium --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin titanium \
    && mkdir /data \
    && chown titanium:titanium /data
COPY --from=builder /opt/venv /opt/venv
# HOST: reachable from other containers. DATA_DIR: the only writable place (SQLite, when no DATABASE_URL is set).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE=$SERVICE \
    HOST=0.0.0.0 \
    DATA_DIR=/data
WORKDIR /data
USER 10001:10001
# Slim images have no curl: the check is the image's own Python asking the service's /health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "titanium_common.healthcheck"]
# Every service stops accepting on SIGTERM and lets in-flight requests finish (SHUTDOWN_TIMEOUT_S).
STOPSIGNAL SIGTERM
CMD ["titanium-service"]
