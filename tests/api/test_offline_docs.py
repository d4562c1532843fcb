"""/docs, /redoc and GraphiQL load every file from the service itself, never from a CDN."""

import base64
import hashlib
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from strawberry.http.ides import get_graphql_ide_html

from api.app import create_app
from api.gql.graphiql import NODE_MODULES, GraphiQLAssets, OfflineGraphQLRouter
from api.gql.schema import build_schema
from api.rest.docs import DOCS_CONTENT_SECURITY_POLICY
from tests.conftest import IN_CI, suite_settings

WEB_GRAPHIQL = NODE_MODULES.parent
HTML = {"accept": "text/html"}
ATTRIBUTE_URL = re.compile(r'(?:src|href)="([^"]+)"')
CDN_ASSET = re.compile(r'https://unpkg\.com/((?:@[^/"]+/)?[^@/"]+)@([^/"]+)/([^"]+)')


def require_graphiql_assets() -> None:
    """Fail in CI, skip elsewhere, when `npm ci` has not installed GraphiQL's files."""
    if not GraphiQLAssets().missing:
        return
    message = "GraphiQL's files are not installed (run scripts/install)"
    if IN_CI:
        pytest.fail(message + "; they are mandatory when CI=true")
    pytest.skip(message)


def loaded_urls(page: str) -> list[str]:
    return [url for url in ATTRIBUTE_URL.findall(page) if not url.startswith("data:")]


def sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


def strawberry_assets() -> list[tuple[str, str, str]]:
    return [tuple(match) for match in CDN_ASSET.findall(get_graphql_ide_html("graphiql"))]


def fake_node_modules(root: Path, *, versions: dict[str, str] | None = None) -> Path:
    """Files at the paths Strawberry asks for; `versions` overrides a package's version."""
    for package, version, name in strawberry_assets():
        (root / package / name).parent.mkdir(parents=True, exist_ok=True)
        (root / package / name).write_text("/* stand-in */")
        manifest = {"version": (versions or {}).get(package, version)}
        (root / package / "package.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_page_loads_only_local_files(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY
    page = response.text
    assert "://" not in page, "an absolute URL in the page would leave the service"
    urls = loaded_urls(page)
    assert len(urls) >= 2  # a script and the icon at least
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url


async def test_swagger_ui_asks_no_online_validator(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert '"validatorUrl": null' in page


async def test_redoc_bundle_has_no_vendor_logo(client: httpx.AsyncClient) -> None:
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    shipped = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_text("utf-8")
    assert logo in shipped, "fastapi-offline's ReDoc changed: check its logo still stays local"

    response = await client.get("/docs-assets/redoc.standalone.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert logo not in response.text
    assert len(response.text) == len(shipped) - len(logo) + len("data:,")


async def test_graphiql_page_loads_its_seven_files_from_the_service(
    client: httpx.AsyncClient,
) -> None:
    require_graphiql_assets()
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    page = response.text
    assert "unpkg" not in page
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page)
    loaded = [tag for tag in tags if "/graphql-assets/" in tag]
    assert len(loaded) == 7
    for tag in loaded:
        url = re.search(r'(?:src|href)="([^"]+)"', tag)
        integrity = re.search(r'integrity="([^"]+)"', tag)
        assert url is not None
        assert integrity is not None, "the page keeps Strawberry's integrity hashes"
        assert url.group(1).startswith("/graphql-assets/")
        asset = await client.get(url.group(1))
        assert asset.status_code == 200, url.group(1)
        assert sri(asset.content) == integrity.group(1), url.group(1)
        kind = "text/css" if url.group(1).endswith(".css") else "text/javascript"
        assert asset.headers["content-type"].startswith(kind)
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    "path",
    [
        "/graphql-assets/graphiql@3.8.3/package.json",
        "/graphql-assets/react@18.3.1/umd/react.production.min.js",
        "/graphql-assets/react@18.2.0/../../pyproject.toml",
        "/graphql-assets/..%2F..%2Fpyproject.toml",
        "/graphql-assets/",
    ],
)
async def test_graphiql_assets_serve_nothing_but_the_page_files(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404


def test_npm_pins_exactly_what_strawberry_asks_for() -> None:
    manifest = json.loads((WEB_GRAPHIQL / "package.json").read_text())
    lock = json.loads((WEB_GRAPHIQL / "package-lock.json").read_text())
    wanted = {package: version for package, version, _ in strawberry_assets()}
    assert len(strawberry_assets()) == 7
    assert manifest["dependencies"] == wanted
    for package, version in wanted.items():
        assert lock["packages"][f"node_modules/{package}"]["version"] == version


async def test_graphiql_assets_url_points_the_page_at_a_mirror(configure: Any) -> None:
    app = create_app(configure(GRAPHIQL_ASSETS_URL='https://mirror.example/npm/"x'))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = (await http.get("/graphql", headers=HTML)).text
    assert "unpkg" not in page
    assert "/graphql-assets/" not in page
    assert page.count('src="https://mirror.example/npm/&quot;x/') == 5
    assert 'href="https://mirror.example/npm/&quot;x/graphiql@3.8.3/graphiql.min.css"' in page
    assert page.count('integrity="sha384-') == 7


async def test_graphiql_off_serves_no_assets(configure: Any) -> None:
    transport = httpx.ASGITransport(app=create_app(configure(GRAPHIQL="false")))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/graphql-assets/react@18.2.0/umd/react.production.min.js")
    assert response.status_code == 404


async def test_missing_graphiql_files_are_named_on_the_page(tmp_path: Path) -> None:
    app = FastAPI()
    schema = build_schema(suite_settings())
    router = OfflineGraphQLRouter(schema, assets=GraphiQLAssets(tmp_path))
    app.include_router(router, prefix="/graphql")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/graphql", headers=HTML)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "GraphiQL's files are not installed" in page
    assert "scripts/install" in page
    assert "GRAPHIQL_ASSETS_URL" in page
    for package, version, name in strawberry_assets():
        assert f"<code>{package}@{version}/{name}</code>" in page
    assert "unpkg" not in page


def test_a_package_of_another_version_counts_as_missing(tmp_path: Path) -> None:
    assets = GraphiQLAssets(fake_node_modules(tmp_path, versions={"react": "18.3.1"}))
    assert assets.missing == ["react@18.2.0/umd/react.production.min.js"]
    assert len(assets.files) == 6


def test_page_guard_names_the_mirror_and_cannot_close_the_script() -> None:
    page = GraphiQLAssets(Path("/nonexistent")).page("https://m.example/</script><b>")
    guard = page[page.index('typeof React === "undefined"') :]
    assert "GraphiQL could not load its scripts from https://m.example/<\\/script><b>" in guard
    assert guard.index("GraphiQL could not load") < guard.index("const EXAMPLE_QUERY")
    assert 'src="https://m.example/&lt;/script&gt;&lt;b&gt;/react@18.2.0/' in page
