# One image recipe for every Python service; build from the repository root:
#   docker build --build-arg SERVICE=user-service -t titanium/user-service .
# SERVICE is a workspace member; its console script (same name) starts it on its default port.
FROM python:3.11-slim
ARG SERVICE
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
RUN test -n "$SERVICE" && uv sync --frozen --no-dev --no-editable --package "$SERVICE" && rm -rf /root/.cache
RUN useradd --system --uid 10001 titanium
USER titanium
ENV SERVICE=$SERVICE HOST=0.0.0.0
CMD ["sh", "-c", "exec \"$SERVICE\""]
