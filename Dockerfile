# syntax=docker/dockerfile:1
# The one-time secret service: `docker build -t onetime-secrets .`, or `docker compose up`.
# CI builds this file with podman and runs the image (scripts/container-check);
# tests/unit/test_deploy_files.py lints it; tests/system/test_deploy_files.py runs the service
# from exactly the files it copies.
# With no DATABASE_URL the service keeps its SQLite database in /data: mount a volume there.

# GraphiQL, React and their CSS, from the npm registry as pinned by the lock file.
FROM node:20-slim AS graphiql
WORKDIR /build
# .npmrc holds legacy-peer-deps: without it npm ci refuses the explorer plugin's peer range.
COPY web/graphiql/package.json web/graphiql/package-lock.json web/graphiql/.npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/secrets.db
# The user, and /data, the one folder it writes: a new volume mounted there takes its owner.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown 10001:10001 /data \
    && chmod 700 /data

# The service runs from /app: Alembic's scripts and the GraphiQL files are found beside it.
WORKDIR /app
# The dependencies as pinned by requirements.txt (scripts/lock), in a layer of their own:
# a change to the code alone does not download them again.
COPY requirements.txt ./
RUN pip install --no-cache-dir --requirement requirements.txt
COPY --from=graphiql /build/node_modules ./web/graphiql/node_modules
COPY pyproject.toml README.md main.py alembic.ini ./
COPY api ./api
COPY models ./models
COPY alembic ./alembic
COPY ots ./ots
# The pages for people (WEB_UI), served from beside the code like GraphiQL's files.
COPY web/pages ./web/pages
# The service itself; --constraint holds every dependency to its pin here too.
RUN pip install --no-cache-dir --constraint requirements.txt . && rm -rf build ./*.egg-info

VOLUME ["/data"]
# Numeric, so an orchestrator can check that the user is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# --no-proxy-headers: X-Forwarded-For is judged by the app against TRUSTED_PROXIES only (uvicorn
# would otherwise believe it from any loopback peer, and the per-address limit with it).
CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
