# syntax=docker/dockerfile:1
# The image of the API, the worker and the migrations (deploy/compose, deploy/k8s):
#   docker build -t chuangzheng:1 .
# One image, three commands: `chuangzheng api` (the default), `chuangzheng worker`, and
# `alembic upgrade head` (the migrations, run once before the others start).
#
# Base images are pinned by tag. Pin them by digest too when you build for production
# (`docker buildx imagetools inspect python:3.11.13-slim-bookworm` prints it) and pass them
# as build arguments: --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:…
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG NODE_IMAGE=node:22.12.0-bookworm-slim

# ---- the dashboard's browser assets, from the npm registry (ui/package-lock.json) ----
FROM ${NODE_IMAGE} AS assets
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts

# ---- the virtual environment: dependencies, then the project (editable: plans/, the
# migrations and alembic.ini are read from the source tree, chuangzheng.settings.repo_root) ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml ./
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY chuangzheng ./chuangzheng
COPY migrations ./migrations
COPY plans ./plans
# The demo county: `chuangzheng simulate` and the forecast's training read it.
COPY deploy/demo ./deploy/demo
COPY worker.py alembic.ini ./
COPY --from=assets /ui/node_modules/echarts/dist/echarts.min.js ./api/ui/static/vendor/echarts.min.js
RUN pip install --upgrade pip \
    && pip install -e . \
    # Bytecode now: the read-only runtime would otherwise compile the workflow modules
    # again for every workflow the sandbox imports them for.
    && python -m compileall -q domain workflows activities api chuangzheng worker.py migrations

# ---- the runtime: slim, the Chinese font for PDFs, no compilers, a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 chuangzheng \
    && useradd --system --uid 10001 --gid chuangzheng --home-dir /app --shell /usr/sbin/nologin chuangzheng \
    && mkdir -p /data \
    && chown chuangzheng:chuangzheng /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    CZ_ENVIRONMENT=production \
    CZ_DATA_DIR=/data \
    CZ_API_HOST=0.0.0.0 \
    CZ_API_PORT=8000 \
    CZ_LOG_FORMAT=json \
    HEALTHCHECK_URL=http://127.0.0.1:8000/readyz
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# The API is ready (/readyz) when its database and Temporal both answer.
# Worker containers set HEALTHCHECK_URL to their metrics address (CZ_METRICS_ADDRESS).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["chuangzheng"]
CMD ["api"]
