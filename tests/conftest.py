"""Shared fixtures: every test that takes `client` or `db` runs on SQLite and PostgreSQL.

PostgreSQL runs get a database of their own, created for the run and dropped after it. When
`CI=true`, an unreachable PostgreSQL fails the run instead of skipping it. Every test under
tests/system/ is marked `system`.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import limits.aio.storage.memory
import limits.aio.strategies
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.access import rate_limits
from api.app import create_app
from api.domain import clock as domain_clock
from api.domain.hashing import PassphraseHasher
from api.settings import Settings
from api.storage.database import Database
from harness import postgres
from tests.clocks import FakeClock

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Tests that start processes: marked `system` by `pytest_collection_modifyitems`.
SYSTEM_TESTS = Path(__file__).resolve().parent / "system"

# Cheap argon2 parameters keep the suite fast; test_units.py hashes with the real defaults
# (test_default_hasher_uses_owasp_argon2id).
TEST_ENV = {
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_TIME_COST": "1",
    "ALLOW_WEAK_ARGON2": "true",
    "PURGE_INTERVAL_SECONDS": "3600",
    # The suite calls from one address far faster than a person; rate-limit tests lower these.
    "RATE_LIMIT_CREATE": "1000000/minute",
    "RATE_LIMIT_REVEAL": "1000000/minute",
    "RATE_LIMIT_RECEIPT": "1000000/minute",
    # Races and load here test correctness; admission control has tests of its own.
    "HASH_QUEUE_TIMEOUT_SECONDS": "inf",
}
# The same, as the in-process application is given them: `Settings(**TEST_SETTINGS)`.
TEST_SETTINGS: dict[str, Any] = {name.lower(): value for name, value in TEST_ENV.items()}
# What the hasher is built from: changing one of these builds the application a new hasher.
_HASHER_SETTINGS = frozenset(
    {
        "argon2_memory_kib",
        "argon2_time_cost",
        "argon2_parallelism",
        "hash_workers",
        "hash_queue_timeout_seconds",
    }
)


def suite_settings(**overrides: Any) -> Settings:
    """The settings of the suite, with `overrides` (field names, any case; values as in env)."""
    changes = {name.lower(): value for name, value in overrides.items()}
    return Settings(**{**TEST_SETTINGS, **changes})


async def _pg_reachable() -> str | None:
    try:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=30)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


def require_postgres(problem: str | None) -> None:
    """Fail in CI, skip elsewhere, when PostgreSQL cannot be reached."""
    if problem is None:
        return
    message = f"PostgreSQL at {PG_ADMIN_DSN} is unreachable ({problem})"
    if IN_CI:
        pytest.fail(message + "; PostgreSQL tests are mandatory when CI=true")
    pytest.skip(message + "; set up PostgreSQL or run in CI")


async def create_pg_database() -> str:
    """Create an empty database for this run and return its SQLAlchemy URL."""
    require_postgres(await _pg_reachable())
    name = await postgres.create_database(PG_ADMIN_DSN, prefix="ots_test")
    return postgres.sqlalchemy_url(postgres.database_dsn(PG_ADMIN_DSN, name))


async def drop_pg_database(url: str) -> None:
    """Drop a database made by `create_pg_database`, closing its leftover connections."""
    await postgres.drop_database(PG_ADMIN_DSN, url.rsplit("/", 1)[1])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/system/ `system`: `-m "not system"` then leaves them out."""
    for item in items:
        if item.path.is_relative_to(SYSTEM_TESTS):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> Iterator[None]:
    """The test settings in the environment, for the processes the tests start."""
    saved = {key: os.environ.get(key) for key in TEST_ENV}
    os.environ.update(TEST_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind the test runs against."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    return str(request.param)


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated-on-start database of the current backend, private to this run."""
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "secrets.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)


@pytest.fixture(scope="module")
async def module_database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """An empty database of the current backend for one module's own servers.

    Not the session's `database_url`: a server left running beside the in-process app would
    share its rows, and reading that SQLite file in this process would drop the app's locks.
    """
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("module-sqlite") / "secrets.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running (migrations applied) on `database_url`."""
    application = create_app(suite_settings(database_url=database_url))
    async with LifespanManager(application):
        yield application


@pytest.fixture
def settings(app: FastAPI) -> Settings:
    """The application's settings, as the service functions take them."""
    current: Settings = app.state.settings
    return current


@pytest.fixture
def hasher(app: FastAPI) -> PassphraseHasher:
    """The application's passphrase hasher, as the service functions take it."""
    current: PassphraseHasher = app.state.hasher
    return current


@pytest.fixture
def configure(app: FastAPI) -> Iterator[Callable[..., Settings]]:
    """Change the application's settings for one test: `configure(MAX_FAILED_ATTEMPTS="3")`.

    The settings object every part of the application was given changes in place (and back
    after the test); a change to hashing builds the application a new hasher. Returns the
    settings, so a test can build a second application from them.
    """
    current: Settings = app.state.settings
    saved, saved_hasher = dict(current), app.state.hasher
    changes: dict[str, Any] = {}

    def apply(**overrides: Any) -> Settings:
        changes.update({name.lower(): value for name, value in overrides.items()})
        changed = suite_settings(database_url=current.database_url, **changes)
        for name in Settings.model_fields:
            setattr(current, name, getattr(changed, name))
        if _HASHER_SETTINGS & changes.keys():
            app.state.hasher = PassphraseHasher.from_settings(current)
        return current

    yield apply
    for name, value in saved.items():
        setattr(current, name, value)
    app.state.hasher = saved_hasher


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the application in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def db(app: FastAPI) -> Database:
    """The application's database, as the service functions take it."""
    database: Database = app.state.database
    return database


# A quarter of a second into a day: every window of a second, minute or hour starts then.
CLOCK_START = 20_000 * 86_400 + 0.25


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Stop the service's clock (`api.domain.clock.now`) at the real time of the test's start.

    Rows of earlier tests expire in real time; with the clock stopped, none of them expires
    during the test, so counts of live or purgeable secrets move only by the test's doing.
    """
    now = domain_clock.now()
    monkeypatch.setattr(domain_clock, "now", lambda: now)
    return now


@pytest.fixture
async def clock(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeClock]:
    """Stop the rate limiter's time: the app counts with a limiter on a clock of the test's.

    `limits` reads `time.time()` itself, so the fake stands in for the `time` module of the
    `limits` modules that read it. Nothing moves unless the test advances it.
    """
    fake = FakeClock(CLOCK_START)
    for module in (limits.aio.storage.memory, limits.aio.strategies):
        monkeypatch.setattr(module, "time", fake)
    # Not monkeypatch: it would delete the attribute of starlette's `State` on undo.
    previous = app.state.rate_limiter
    limiter = rate_limits.RateLimiter(app.state.settings, clock=fake)
    app.state.rate_limiter = limiter
    try:
        yield fake
    finally:
        app.state.rate_limiter = previous
        await limiter.aclose()
