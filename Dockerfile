# The Starq API server. Build: docker build -t starq .   Run: see compose.yaml and docs/deployment.md.

# -- build: resolve the locked dependencies into a virtualenv, then install Starq itself into it ----------
FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# Dependencies first (from the lock file, with the server extra, no dev or benchmark tools), so a code change does
# not rebuild this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --extra server --no-install-project
COPY setup.py ./
COPY server ./server
COPY worker_kit ./worker_kit
COPY cli ./cli
COPY dashboard ./dashboard
RUN uv sync --frozen --no-default-groups --extra server --no-editable

# -- run: the virtualenv only, as an unprivileged user ----------------------------------------------------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 starq \
 && useradd --system --uid 10001 --gid starq --home-dir /var/lib/starq --create-home starq
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STARQ_LOG_FORMAT=json \
    STARQ_ACCESS_LOG=1 \
    STARQ_DATA_DIR=/var/lib/starq/data
USER starq
WORKDIR /var/lib/starq
EXPOSE 8000
# Liveness: a 200 from /api/health/live means the process serves, whether or not its store answers (a restart
# would not bring the store back). compose.yaml checks readiness instead (/api/health/ready: the store answers
# too), which is what other services wait for; see docs/deployment.md.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health/live', timeout=4).status != 200)"]
# SIGTERM drains gracefully (parked long-polls answer at once); give it --shutdown-grace plus a margin.
STOPSIGNAL SIGTERM
ENTRYPOINT ["starq"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
