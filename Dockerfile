# syntax=docker/dockerfile:1
# The one-time secret service: `docker build -t onetime-secrets .`, or `docker compose up`.
# CI does not build this image (it has no Docker engine); tests/test_deploy_files.py lints this
# file and runs the service from exactly the files it copies.

# GraphiQL, React and their CSS, from the npm registry as pinned by the lock file.
FROM node:20-slim AS graphiql
WORKDIR /build
COPY web/graphiql/package.json web/graphiql/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

# The service runs from /app: Alembic's scripts and the GraphiQL files are found beside it.
WORKDIR /app
COPY pyproject.toml README.md main.py alembic.ini ./
COPY api ./api
COPY models ./models
COPY alembic ./alembic
RUN pip install --no-cache-dir . && rm -rf build ./*.egg-info
COPY --from=graphiql /build/node_modules ./web/graphiql/node_modules

# Numeric, so an orchestrator can check that the user is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# --no-proxy-headers: X-Forwarded-For is judged by the app against TRUSTED_PROXIES only (uvicorn
# would otherwise believe it from any loopback peer, and the per-address limit with it).
CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
