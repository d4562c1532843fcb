"""PROFILE=production: the API alone, and /metrics behind a token that must not be empty.

GraphiQL, introspection and the API docs (/docs, /redoc, /openapi.json) are off unless asked for.
"""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.settings import InvalidSettings, Settings, load_settings
from tests.conftest import suite_settings

TOKEN = "canary-metrics-token-81c2"


def test_production_needs_a_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE", "production")
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    with pytest.raises(InvalidSettings, match="METRICS_TOKEN"):
        load_settings()
    monkeypatch.setenv("METRICS", "false")
    assert load_settings().metrics is False


@pytest.mark.parametrize("profile", ["production", "development"])
@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_metrics_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, profile: str, empty: str
) -> None:
    """`METRICS_TOKEN=` would let `Authorization: Bearer ` read /metrics: refused, by name."""
    monkeypatch.setenv("PROFILE", profile)
    monkeypatch.setenv("METRICS_TOKEN", empty)
    with pytest.raises(InvalidSettings, match=r"METRICS_TOKEN: .*must not be empty"):
        load_settings()


def test_production_turns_off_the_playground_and_docs_unless_asked() -> None:
    production = Settings(profile="production", metrics_token=TOKEN)
    assert (production.graphiql, production.graphql_introspection, production.api_docs) == (
        False,
        False,
        False,
    )
    asked = Settings(profile="production", metrics_token=TOKEN, graphiql=True, api_docs=True)
    assert (asked.graphiql, asked.api_docs) == (True, True)
    development = Settings()
    assert (development.graphiql, development.graphql_introspection, development.api_docs) == (
        True,
        True,
        True,
    )
    assert TOKEN not in repr(production)


@contextlib.asynccontextmanager
async def production_app(tmp_path: Path, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the application built with PROFILE=production and `env`."""
    settings = suite_settings(
        profile="production",
        metrics_token=TOKEN,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}",
        **env,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def production_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with production_app(tmp_path) as http:
        yield http


async def test_production_app(production_client: httpx.AsyncClient) -> None:
    http = production_client
    assert (await http.get("/graphql", headers={"accept": "text/html"})).status_code == 404
    introspection = await http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
    assert introspection.json()["errors"]
    refused = await http.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    scraped = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    assert TOKEN not in scraped.text
    created = await http.post("/generate", json={"secret": "s", "passphrase": "p"})
    assert created.status_code == 200
    for path in DOCS:
        assert (await http.get(path)).status_code == 404, path


DOCS = ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui.css")


async def test_production_serves_the_docs_when_asked(tmp_path: Path) -> None:
    async with production_app(tmp_path, API_DOCS="true") as http:
        for path in DOCS:
            assert (await http.get(path)).status_code == 200, path
