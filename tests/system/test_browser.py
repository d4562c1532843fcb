"""The pages a person opens, in a real headless Chromium against a real uvicorn server.

Every request the browser makes is recorded, and any that is not for 127.0.0.1 fails the
test; such requests are also aborted, and Chromium resolves no other host name, so nothing
leaves the machine even when the pages regress (`tests/system/browsers.py`). Screenshots land in
each test's tmp_path.
"""

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Route

from harness.uvicorn import Uvicorn
from tests.system.browsers import Tab, launch_chromium, open_tab
from tests.system.servers import run_server

SECRET = "opened in a real browser"
PASSPHRASE = "correct horse battery"
MUTATION = (
    f'mutation {{ createSecret(secret: "{SECRET}", passphrase: "{PASSPHRASE}") '
    "{ ... on CreatedSecret { secretKey } } }"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    folder = tmp_path_factory.mktemp("browser")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'secrets.db'}",
        "GRAPHIQL": "true",
        "SERVER_LOG": str(folder / "server.log"),
    }
    with run_server(env) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as launched:
        yield launched


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    async with open_tab(browser, viewport={"width": 1280, "height": 800}) as opened:
        yield opened


async def test_graphiql_runs_a_mutation_entered_in_its_editor(
    server: Uvicorn, tab: Tab, tmp_path: Path
) -> None:
    page = tab.page
    await page.goto(f"{server.url}/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await editor.click()
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.press("Delete")
    # Entered as a paste would be: typed key by key, GraphiQL's completion pop-ups (which
    # open once the schema has loaded) could take keystrokes on a busy machine.
    await page.keyboard.insert_text(MUTATION)
    assert await editor.evaluate("node => node.CodeMirror.getValue()") == MUTATION
    await page.locator("button.graphiql-execute-button").click()
    result = page.locator(".graphiql-response")
    await result.get_by_text("secretKey").wait_for()
    await page.screenshot(path=tmp_path / "graphiql.png")

    key = re.search(r'"secretKey":\s*"([0-9a-f]{32})"', await result.inner_text())
    assert key is not None, await result.inner_text()
    async with httpx.AsyncClient(base_url=server.url) as http:
        revealed = await http.post(f"/secrets/{key.group(1)}", json={"passphrase": PASSPHRASE})
    assert revealed.json() == {"secret": SECRET}
    assert tab.outside_loopback() == []
    assert any("/graphql-assets/graphiql@" in url for url in tab.requested)


async def test_graphiql_keeps_nothing_it_was_given(
    server: Uvicorn, tab: Tab, tmp_path: Path
) -> None:
    """A secret typed into the playground reaches neither the address bar nor storage."""
    page = tab.page
    await page.goto(f"{server.url}/graphql")
    canary_secret, canary_passphrase = "canary-browser-secret-5e1f", "canary-browser-pass-77d0"
    mutation = (
        "mutation($s: String!, $p: String!) { createSecret(secret: $s, passphrase: $p) "
        "{ ... on CreatedSecret { secretKey } } }"
    )
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await editor.click()
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(mutation + f" # {canary_secret}")
    variables = page.locator(".graphiql-editor-tool .CodeMirror").first
    await variables.click()
    await page.keyboard.insert_text(f'{{"s": "{canary_secret}", "p": "{canary_passphrase}"}}')
    await page.locator("button.graphiql-execute-button").click()
    await page.locator(".graphiql-response").get_by_text("secretKey").wait_for()
    await page.screenshot(path=tmp_path / "graphiql-forgetful.png")

    stored = await page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    history = await page.evaluate("() => window.location.href + ' ' + history.length")
    for canary in (canary_secret, canary_passphrase):
        assert canary not in page.url
        assert canary not in history
        assert canary not in stored, stored
    assert tab.outside_loopback() == []


async def test_graphiql_page_has_a_strict_policy(server: Uvicorn) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/graphql", headers={"accept": "text/html"})
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "connect-src 'self'" in policy


async def test_graphiql_says_so_when_its_scripts_cannot_load(
    server: Uvicorn, tab: Tab, tmp_path: Path
) -> None:
    async def unreachable(route: Route) -> None:
        await route.abort("connectionrefused")

    await tab.page.route("**/graphql-assets/**", unreachable)
    await tab.page.goto(f"{server.url}/graphql")
    message = tab.page.get_by_text("GraphiQL could not load its scripts from /graphql-assets")
    await message.wait_for()
    await tab.page.screenshot(path=tmp_path / "graphiql-unavailable.png")
    assert tab.outside_loopback() == []


async def test_swagger_ui_lists_the_routes(server: Uvicorn, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    await page.goto(f"{server.url}/docs")
    await page.locator(".opblock").first.wait_for()
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=tmp_path / "docs.png", full_page=True)

    paths = await page.locator(".opblock-summary-path").evaluate_all(
        "nodes => nodes.map(node => node.dataset.path)"
    )
    assert {"/generate", "/secrets/{secret_key}", "/healthz", "/readyz"} <= set(paths)
    assert tab.outside_loopback() == []
    assert f"{server.url}/docs-assets/swagger-ui-bundle.js" in tab.requested


async def test_redoc_renders_without_its_vendor_logo(
    server: Uvicorn, tab: Tab, tmp_path: Path
) -> None:
    page = tab.page
    await page.goto(f"{server.url}/redoc")
    await page.get_by_role("heading", name="Generate").wait_for()
    await page.get_by_text("API docs by Redocly").wait_for()  # where the logo would load
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=tmp_path / "redoc.png")

    assert tab.outside_loopback() == []
    assert f"{server.url}/docs-assets/redoc.standalone.js" in tab.requested
