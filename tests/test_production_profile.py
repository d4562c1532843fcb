"""PROFILE=production: GraphiQL and introspection off unless asked for, /metrics behind a token."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.settings import InvalidSettings, Settings, load_settings
from tests.conftest import reset_caches

TOKEN = "canary-metrics-token-81c2"


def test_production_needs_a_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE", "production")
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    with pytest.raises(InvalidSettings, match="METRICS_TOKEN"):
        load_settings()
    monkeypatch.setenv("METRICS", "false")
    assert load_settings().metrics is False


def test_production_turns_off_the_playground_unless_asked() -> None:
    production = Settings(profile="production", metrics_token=TOKEN)
    assert (production.graphiql, production.graphql_introspection) == (False, False)
    asked = Settings(profile="production", metrics_token=TOKEN, graphiql=True)
    assert asked.graphiql is True
    development = Settings()
    assert (development.graphiql, development.graphql_introspection) == (True, True)
    assert TOKEN not in repr(production)


@pytest.fixture
async def production_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("PROFILE", "production")
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}")
    reset_caches()
    app = create_app()
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    monkeypatch.undo()
    reset_caches()


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
