"""The pages for people (`/`, `/s/…`, `/r/…`) in headless Chromium against a real uvicorn server.

The sender and the reader each get a browser context of their own. Every request of every
context is recorded (`tests/system/browsers.py`): a test looks through them for the plaintext and
the key, and each test ends by checking that Chromium reported no policy violation and that
nothing tried to leave the machine. Tests of what is stored run on SQLite and PostgreSQL.

Waits are Playwright's `expect`, which polls until the page shows what the test expects,
under a window far beyond what a busy machine needs; nothing sleeps.
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect

from api.app import create_app
from harness import ROOT
from harness.uvicorn import Uvicorn
from ots.envelope import encode_base64url, new_key, open_envelope, seal
from ots.link import parse_secret_link, secret_link
from tests.conftest import IN_CI, suite_settings
from tests.system.browsers import Tab, launch_chromium, open_tab
from tests.system.servers import run_server

VECTORS = json.loads((ROOT / "docs" / "e2e-vectors.json").read_text(encoding="utf-8"))
# A host that is not localhost, mapped to 127.0.0.1: plain HTTP there is no secure context.
PLAIN_HOST = "plain-http.test"
# Generous: a loaded two-core machine is slow, and only a broken page waits this long.
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PASSPHRASE = "tulip-granite-seven-kettle"
MULTILINE = "Wi-Fi: « café » 🔑\nuser: zoë\npassword: Ünïcødé-✓\n"
KEY_IN_LINK = re.compile(r"/s/[0-9a-f]{32}#[A-Za-z0-9_-]{43}$")
RECEIPT_IN_LINK = re.compile(r"/r/[0-9a-f]{32}$")
ASSET_TAG = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="(/assets/[^"]+)"[^>]*>')
INTEGRITY = re.compile(r'\bintegrity="([^"]+)"')


def canary(label: str) -> str:
    """A text that appears nowhere unless this test put it there."""
    return f"{label} {uuid.uuid4().hex} ✓ ünïcode\nsecond line"


# --- Servers and browsers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """The service on the current backend, logging everything it logs."""
    log = tmp_path_factory.mktemp("pages") / "uvicorn.log"
    env = {"DATABASE_URL": module_database_url, "LOG_LEVEL": "DEBUG", "SERVER_LOG": str(log)}
    with run_server(env) as running:
        yield running


def sqlite_env(folder: Path, **env: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'secrets.db'}",
        "SERVER_LOG": str(folder / "uvicorn.log"),
        **env,
    }


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """An instance where only holders of a creator token create secrets."""
    with run_server(sqlite_env(tmp_path_factory.mktemp("token"), CREATE_AUTH="token")) as running:
        yield running


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """An instance that stores secrets of at most 1024 bytes (envelopes, for the pages)."""
    env = sqlite_env(tmp_path_factory.mktemp("small"), MAX_SECRET_BYTES="1024")
    with run_server(env) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium(mapped_hosts=[PLAIN_HOST]) as launched:
        yield launched


class Tabs:
    """Opens browser contexts for one test: one per person (sender, reader, …)."""

    def __init__(self, browser: Browser, stack: contextlib.AsyncExitStack) -> None:
        self.browser = browser
        self.stack = stack
        self.opened: list[Tab] = []

    async def open(self, **context_options: Any) -> Tab:
        context_options.setdefault("viewport", {"width": 1024, "height": 800})
        tab = await self.stack.enter_async_context(
            open_tab(self.browser, mapped_hosts=[PLAIN_HOST], **context_options)
        )
        self.opened.append(tab)
        return tab

    def all_sent(self) -> list[str]:
        return [request.text() for tab in self.opened for request in tab.sent]


@pytest.fixture
async def tabs(browser: Browser) -> AsyncIterator[Tabs]:
    """Browser contexts that must end with no policy violation and nothing sent away."""
    async with contextlib.AsyncExitStack() as stack:
        opened = Tabs(browser, stack)
        yield opened
        problems = [p for tab in opened.opened for p in tab.policy_problems()]
        outside = [url for tab in opened.opened for url in tab.outside_loopback()]
    assert (problems, outside) == ([], [])


# --- What people do on the pages -----------------------------------------------------------


def textbox(page: Page, name: str) -> Locator:
    """The visible text field named `name` (hidden result fields may share a name)."""
    return page.get_by_label(name, exact=True).filter(visible=True)


def button(page: Page, name: str) -> Locator:
    return page.get_by_role("button", name=name, exact=True)


@dataclass
class Links:
    secret: str
    receipt: str

    @property
    def secret_key(self) -> str:
        return parse_secret_link(self.secret).secret_key

    @property
    def receipt_key(self) -> str:
        return self.receipt.rsplit("/", 1)[1]


async def create_on_page(
    page: Page, base_url: str, secret: str, passphrase: str = PASSPHRASE, expires: str = ""
) -> Links:
    """Fill the create page, press "Create link" and return the two links it shows."""
    await page.goto(f"{base_url}/")
    await textbox(page, "Secret").fill(secret)
    await textbox(page, "Passphrase").fill(passphrase)
    if expires:
        await page.get_by_label("Expires after", exact=True).select_option(label=expires)
    await button(page, "Create link").click()
    link = page.get_by_role("textbox", name="Link", exact=True)
    receipt = page.get_by_role("textbox", name="Receipt link", exact=True)
    await expect(link).to_have_value(KEY_IN_LINK)
    await expect(receipt).to_have_value(RECEIPT_IN_LINK)
    return Links(await link.input_value(), await receipt.input_value())


async def open_link(page: Page, link: str) -> None:
    """Open `link` as a new page would, even where only its `#fragment` differs."""
    # From the same address, a new fragment is a same-document navigation: no reload.
    await page.goto("about:blank")
    await page.goto(link)


async def reveal_on_page(page: Page, link: str, passphrase: str = PASSPHRASE) -> None:
    """Open `link`, type the passphrase and press "Reveal"."""
    await open_link(page, link)
    await textbox(page, "Passphrase").fill(passphrase)
    await button(page, "Reveal").click()


async def revealed_text(page: Page) -> str:
    secret = page.get_by_role("textbox", name="Secret", exact=True)
    await expect(secret).to_be_visible()
    return await secret.input_value()


async def alert_text(page: Page) -> str:
    alert = page.get_by_role("alert")
    await expect(alert).to_be_visible()
    await expect(alert).not_to_have_text("")
    return await alert.inner_text()


async def settled(page: Page) -> None:
    """Wait until the page has no request in flight (nothing it started is left unseen)."""
    await page.wait_for_load_state("networkidle")


# --- Through the API, as a program would -------------------------------------------------


async def rest(server: Uvicorn, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_MS / 1000) as http:
        return await http.request(method, path, **kwargs)


async def create_by_rest(server: Uvicorn, secret: str) -> dict[str, str]:
    response = await rest(
        server, "POST", "/generate", json={"secret": secret, "passphrase": PASSPHRASE}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def create_sealed_by_rest(server: Uvicorn, plaintext: str) -> tuple[Links, bytes]:
    """Seal `plaintext` in Python, store the envelope, and return its links and key."""
    key = new_key()
    created = await create_by_rest(server, seal(plaintext.encode(), key))
    links = Links(
        secret_link(server.url, created["secret_key"], key),
        f"{server.url}/r/{created['receipt_key']}",
    )
    return links, key


async def receipt(server: Uvicorn, links: Links) -> dict[str, Any]:
    response = await rest(server, "GET", f"/receipts/{links.receipt_key}")
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- The format, in the browser ------------------------------------------------------------

VECTORS_IN_BROWSER = """async (vectors) => {
  const m = await import("/assets/app.js");
  const hex = (text) => Uint8Array.from(text.match(/../g), (pair) => parseInt(pair, 16));
  const out = { sealed: [], opened: [], refused: [], sizes: [], keys: [] };
  for (const v of vectors.valid) {
    const key = m.decodeBase64Url(v.key);
    out.keys.push(m.encodeBase64Url(key));
    const plaintext = v.plaintext ?? m.decodeBase64Url(v.plaintext_base64url);
    out.sealed.push(await m.sealWithNonce(key, hex(v.nonce_hex), plaintext));
    out.opened.push(m.encodeBase64Url(await m.openEnvelope(key, v.envelope)));
  }
  for (const v of vectors.invalid) {
    try {
      await m.openEnvelope(m.decodeBase64Url(v.key), v.envelope);
      out.refused.push(null);
    } catch (error) {
      out.refused.push(String(error));
    }
  }
  out.sizes = vectors.sizes.map((size) => m.maxPlaintextBytes(size.max_envelope_bytes));
  return out;
}"""

ROUND_TRIP_IN_BROWSER = """async (text) => {
  const m = await import("/assets/app.js");
  const key = m.newKey();
  const envelope = await m.seal(key, text);
  const again = await m.seal(key, text);
  const opened = new TextDecoder().decode(await m.openEnvelope(key, envelope));
  return { key: m.encodeBase64Url(key), envelope, fresh: envelope !== again, opened,
           passphrases: [m.generatePassphrase(), m.generatePassphrase()] };
}"""


@SQLITE_ONLY
async def test_the_page_module_passes_every_vector(server: Uvicorn, tabs: Tabs) -> None:
    tab = await tabs.open()
    await tab.page.goto(f"{server.url}/")
    found = await tab.page.evaluate(VECTORS_IN_BROWSER, VECTORS)

    valid, invalid = VECTORS["valid"], VECTORS["invalid"]
    assert found["keys"] == [vector["key"] for vector in valid]
    assert found["sealed"] == [vector["envelope"] for vector in valid]
    assert found["opened"] == [vector["plaintext_base64url"] for vector in valid]
    opened = [v["description"] for v, why in zip(invalid, found["refused"], strict=True) if not why]
    assert opened == [], "these invalid envelopes opened in the browser"
    assert found["sizes"] == [size["max_plaintext_bytes"] for size in VECTORS["sizes"]]


@SQLITE_ONLY
async def test_the_page_module_seals_with_fresh_keys_and_nonces(
    server: Uvicorn, tabs: Tabs
) -> None:
    tab = await tabs.open()
    await tab.page.goto(f"{server.url}/")
    found = await tab.page.evaluate(ROUND_TRIP_IN_BROWSER, MULTILINE)
    assert found["opened"] == MULTILINE
    assert found["fresh"], "two seals under one key used the same nonce"
    # What the browser sealed, Python opens.
    key = base64.urlsafe_b64decode(found["key"] + "=")
    assert open_envelope(found["envelope"], key) == MULTILINE.encode()
    first, second = found["passphrases"]
    assert first != second
    assert len(first) >= 20


# --- Round trip, leaks, interop (both databases) ------------------------------------------


async def test_round_trip_between_two_people(server: Uvicorn, tabs: Tabs) -> None:
    sender, reader, latecomer = await tabs.open(), await tabs.open(), await tabs.open()
    links = await create_on_page(sender.page, server.url, MULTILINE)
    # The expiry, shown in local time, is the server's.
    expires = sender.page.locator("time").filter(visible=True).first
    await expect(expires).not_to_have_text("")
    assert await expires.get_attribute("datetime") == (await receipt(server, links))["expires_at"]
    await expect(
        sender.page.get_by_text("another channel").filter(visible=True).first
    ).to_be_visible()
    for name in ("Copy link", "Copy receipt link"):
        await expect(button(sender.page, name)).to_be_visible()

    # A wrong passphrase first: counted on the receipt, and the right one still works.
    await reveal_on_page(reader.page, links.secret, "not the passphrase")
    wrong = await alert_text(reader.page)
    assert (await receipt(server, links))["failed_attempts"] == 1
    await textbox(reader.page, "Passphrase").fill(PASSPHRASE)
    await button(reader.page, "Reveal").click()
    assert await revealed_text(reader.page) == MULTILINE
    await expect(reader.page.get_by_text("deleted from the server")).to_be_visible()
    await expect(button(reader.page, "Copy secret")).to_be_visible()
    state = await receipt(server, links)
    assert (state["status"], state["failed_attempts"]) == ("revealed", 1)

    # Read once: the second visit, and an unknown key, get the wrong passphrase's words.
    await reveal_on_page(latecomer.page, links.secret)
    assert await alert_text(latecomer.page) == wrong
    unknown = links.secret.replace(links.secret_key, uuid.uuid4().hex)
    await reveal_on_page(latecomer.page, unknown)
    assert await alert_text(latecomer.page) == wrong
    await expect(latecomer.page.get_by_role("textbox", name="Secret", exact=True)).to_be_hidden()


def stored_bytes(database_url: str) -> bytes:
    """Everything the database holds: the SQLite files, or a `pg_dump` of the database."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        return b"".join(file.read_bytes() for file in files if file.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        message = "pg_dump is missing (Debian package postgresql-client)"
        if IN_CI:
            pytest.fail(message + "; it is mandatory when CI=true")
        pytest.skip(message)
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    dumped = subprocess.run(  # noqa: S603
        [pg_dump, "--dbname", dsn], capture_output=True, timeout=120, check=True
    )
    assert b"CREATE TABLE" in dumped.stdout
    return dumped.stdout


def spellings(text: str) -> list[bytes]:
    """The ways a text could travel or be stored: as is, escaped, quoted, hex, base64."""
    data = text.encode()
    return [
        data,
        json.dumps(text).encode()[1:-1],
        json.dumps(text, ensure_ascii=False).encode()[1:-1],
        quote(text).encode(),
        data.hex().encode(),
        encode_base64url(data).encode(),
        base64.b64encode(data).rstrip(b"="),
    ]


def key_spellings(key: bytes) -> list[bytes]:
    return [encode_base64url(key).encode(), base64.b64encode(key).rstrip(b"="), key.hex().encode()]


async def test_neither_the_key_nor_the_plaintext_leaves_the_browser(
    server: Uvicorn, module_database_url: str, tabs: Tabs
) -> None:
    sender, reader = await tabs.open(), await tabs.open()
    read_text, kept_text = canary("read on the page"), canary("revealed through REST")
    read = await create_on_page(sender.page, server.url, read_text)
    await reveal_on_page(reader.page, read.secret)
    assert await revealed_text(reader.page) == read_text
    kept = await create_on_page(sender.page, server.url, kept_text)

    # Interop: what the page stored is an `ots1` envelope that the link's key opens in Python.
    kept_key = parse_secret_link(kept.secret).key
    assert kept_key is not None
    response = await rest(
        server, "POST", f"/secrets/{kept.secret_key}", json={"passphrase": PASSPHRASE}
    )
    assert response.status_code == 200, response.text
    envelope = response.json()["secret"]
    assert envelope.startswith("ots1.")
    assert open_envelope(envelope, kept_key).decode() == kept_text
    read_key = parse_secret_link(read.secret).key
    assert read_key is not None

    for tab in (sender, reader):
        await settled(tab.page)
    sent = tabs.all_sent()
    assert any("POST" in request and "/generate" in request for request in sent)
    places = {
        "a request": "\n".join(sent).encode(),
        "the database": stored_bytes(module_database_url),
        "the server log": server.log_path.read_bytes(),
    }
    secrets_ = {
        "the plaintext": [s for text in (read_text, kept_text) for s in spellings(text)],
        "the key": [s for key in (read_key, kept_key) for s in key_spellings(key)],
    }
    leaks = [
        f"{what} in {where}"
        for where, haystack in places.items()
        for what, needles in secrets_.items()
        if any(needle in haystack for needle in needles)
    ]
    assert leaks == []


async def test_an_envelope_sealed_in_python_opens_on_the_page(server: Uvicorn, tabs: Tabs) -> None:
    links, _ = await create_sealed_by_rest(server, MULTILINE)
    reader = await tabs.open()
    await reveal_on_page(reader.page, links.secret)
    assert await revealed_text(reader.page) == MULTILINE


async def test_a_link_preview_changes_nothing(server: Uvicorn, tabs: Tabs) -> None:
    links, _ = await create_sealed_by_rest(server, "previewed, never read")
    page_url = links.secret.split("#", 1)[0]
    async with httpx.AsyncClient(timeout=WAIT_MS / 1000) as http:
        got, head = await http.get(page_url), await http.head(page_url)
    assert got.status_code == head.status_code == 200
    assert got.headers["content-type"].startswith("text/html")
    assert 'data-page="reveal"' in got.text
    assert head.content == b""

    # A browser that opens the link and does nothing else only loads the page and its files.
    reader = await tabs.open()
    await reader.page.goto(links.secret)
    await expect(button(reader.page, "Reveal")).to_be_visible()
    await settled(reader.page)
    paths = {urlsplit(url).path for url in reader.requested}
    assert paths - {urlsplit(page_url).path} <= {
        "/assets/app.js",
        "/assets/app.css",
        "/assets/favicon.svg",
    }
    state = await receipt(server, links)
    assert (state["status"], state["failed_attempts"]) == ("pending", 0)


async def test_the_receipt_page_follows_the_secret_and_revokes_it(
    server: Uvicorn, tabs: Tabs
) -> None:
    sender = await tabs.open()
    status, failed = sender.page.locator("#status"), sender.page.locator("#failed-attempts")

    links, _ = await create_sealed_by_rest(server, "followed")
    await sender.page.goto(links.receipt)
    await expect(status).to_have_text("pending")
    await expect(failed).to_have_text("0")
    state = await receipt(server, links)
    for moment in (state["created_at"], state["expires_at"]):
        await expect(sender.page.locator(f'time[datetime="{moment}"]')).not_to_have_text("")
    # The page polls: a wrong guess and then the reveal show up without a reload.
    wrong = await rest(server, "POST", f"/secrets/{links.secret_key}", json={"passphrase": "no"})
    assert wrong.status_code == 404
    await expect(failed).to_have_text("1")
    right = await rest(
        server, "POST", f"/secrets/{links.secret_key}", json={"passphrase": PASSPHRASE}
    )
    assert right.status_code == 200
    await expect(status).to_have_text("revealed")
    await expect(button(sender.page, "Revoke")).to_be_hidden()
    assert sender.requested.count(links.receipt) == 1, "the receipt page was reloaded"

    revoked, _ = await create_sealed_by_rest(server, "taken back")
    await sender.page.goto(revoked.receipt)
    await expect(status).to_have_text("pending")
    await button(sender.page, "Revoke").click()
    await expect(status).to_have_text("revoked")
    await expect(button(sender.page, "Revoke")).to_be_hidden()
    assert (await receipt(server, revoked))["status"] == "revoked"

    reader = await tabs.open()
    await reveal_on_page(reader.page, revoked.secret)
    await alert_text(reader.page)
    await expect(reader.page.get_by_role("textbox", name="Secret", exact=True)).to_be_hidden()


async def test_a_link_without_its_key_warns_before_revealing(server: Uvicorn, tabs: Tabs) -> None:
    reader = await tabs.open()
    page = reader.page

    # A secret stored in plain through the API: the reader may reveal it without a key.
    plain = await create_by_rest(server, "stored in plain")
    await page.goto(f"{server.url}/s/{plain['secret_key']}")
    assert re.search(r"no key", await alert_text(page), re.IGNORECASE)
    await expect(textbox(page, "Passphrase")).to_have_count(0)
    await button(page, "Reveal without a key").click()
    await textbox(page, "Passphrase").fill(PASSPHRASE)
    await button(page, "Reveal").click()
    assert await revealed_text(page) == "stored in plain"

    # An envelope without its key: used up, and the page says the link was incomplete.
    sealed, _ = await create_sealed_by_rest(server, "needs its key")
    await page.goto(sealed.secret.split("#", 1)[0])
    await button(page, "Reveal without a key").click()
    await textbox(page, "Passphrase").fill(PASSPHRASE)
    await button(page, "Reveal").click()
    assert "incomplete" in await alert_text(page)
    await expect(page.get_by_role("textbox", name="Secret", exact=True)).to_be_hidden()

    # A damaged key: the same warning before anything is sent.
    await open_link(page, sealed.secret[:-1])
    assert "incomplete" in await alert_text(page)
    await expect(button(page, "Reveal without a key")).to_be_visible()

    # The sender resends the whole link, pasted into the same tab: only the `#key` differs.
    whole, _ = await create_sealed_by_rest(server, "the whole link")
    await open_link(page, whole.secret.split("#", 1)[0])
    await alert_text(page)
    await page.goto(whole.secret)
    await expect(button(page, "Reveal")).to_be_visible()
    await expect(page).to_have_url(whole.secret.split("#", 1)[0])
    await textbox(page, "Passphrase").fill(PASSPHRASE)
    await button(page, "Reveal").click()
    assert await revealed_text(page) == "the whole link"


# --- Policy ---------------------------------------------------------------------------------


def directives(policy: str) -> dict[str, list[str]]:
    parsed = (part.split() for part in policy.split(";") if part.strip())
    return {name: values for name, *values in parsed}


@SQLITE_ONLY
async def test_the_pages_have_a_strict_policy_and_pinned_files(server: Uvicorn) -> None:
    paths = ["/", f"/s/{uuid.uuid4().hex}", f"/r/{uuid.uuid4().hex}"]
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_MS / 1000) as http:
        for path in paths:
            response = await http.get(path)
            assert response.status_code == 200
            policy = response.headers["content-security-policy"]
            assert "unsafe-inline" not in policy
            assert "unsafe-eval" not in policy
            found = directives(policy)
            assert found["default-src"] == ["'none'"]
            for name in ("script-src", "style-src", "img-src", "connect-src", "font-src"):
                assert found.get(name, ["'self'"]) == ["'self'"], name
            for name in ("frame-ancestors", "base-uri", "form-action"):
                assert found[name] == ["'none'"], name
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "no-referrer"

            tags = [tag for tag in ASSET_TAG.finditer(response.text) if "icon" not in tag[0]]
            assert {tag[1] for tag in tags} == {"/assets/app.js", "/assets/app.css"}, path
            for tag in tags:
                pinned = INTEGRITY.search(tag[0])
                assert pinned is not None, f"{path}: {tag[0]} has no integrity"
                served = await http.get(tag[1])
                assert served.status_code == 200
                assert served.headers["cache-control"] == "no-store"
                digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
                assert pinned[1] == f"sha384-{digest}", tag[1]


@SQLITE_ONLY
async def test_a_whole_flow_keeps_nothing_in_the_browser(server: Uvicorn, tabs: Tabs) -> None:
    sender, reader = await tabs.open(), await tabs.open()
    page = sender.page
    await page.goto(f"{server.url}/")
    for name in ("Secret", "Passphrase"):
        field = textbox(page, name)
        assert await field.get_attribute("autocomplete") == "off", name
        assert await field.get_attribute("spellcheck") == "false", name

    links = await create_on_page(page, server.url, canary("kept nowhere"))
    await reader.page.goto(links.secret)
    # The key is out of the address bar (and so out of the history) once the page has it.
    assert "#" not in reader.page.url
    assert reader.page.url == links.secret.split("#", 1)[0]
    field = textbox(reader.page, "Passphrase")
    assert await field.get_attribute("autocomplete") == "off"
    assert await field.get_attribute("spellcheck") == "false"
    await field.fill(PASSPHRASE)
    await button(reader.page, "Reveal").click()
    await revealed_text(reader.page)
    secret = reader.page.get_by_role("textbox", name="Secret", exact=True)
    assert await secret.get_attribute("autocomplete") == "off"
    assert await secret.get_attribute("spellcheck") == "false"
    await page.goto(links.receipt)
    await expect(page.locator("#status")).to_have_text("revealed")

    for tab in (sender, reader):
        kept = await tab.page.evaluate(
            "() => [localStorage.length, sessionStorage.length, document.cookie]"
        )
        assert kept == [0, 0, ""]
        assert await tab.context.cookies() == []
        assert "#" not in tab.page.url


@SQLITE_ONLY
async def test_plain_http_elsewhere_than_localhost_refuses_to_encrypt(
    server: Uvicorn, tabs: Tabs
) -> None:
    port = urlsplit(server.url).port
    tab = await tabs.open()
    page = tab.page
    await page.goto(f"http://{PLAIN_HOST}:{port}/")
    assert await page.evaluate("() => window.isSecureContext") is False
    assert "HTTPS" in await alert_text(page)
    create = button(page, "Create link")
    await expect(create).to_be_disabled()
    # Even a determined sender sends nothing: the form is submitted by the keyboard too.
    await textbox(page, "Secret").fill("never sent in plain")
    await textbox(page, "Passphrase").fill(PASSPHRASE)
    await textbox(page, "Passphrase").press("Enter")
    await create.click(force=True)
    await settled(page)
    assert [r.url for r in tab.sent if r.method != "GET"] == []
    assert not any("/generate" in url for url in tab.requested)

    # The reveal page will not use up a secret it could not decrypt.
    links, _ = await create_sealed_by_rest(server, "not here")
    await page.goto(links.secret.replace("127.0.0.1", PLAIN_HOST))
    assert "HTTPS" in await alert_text(page)
    await expect(button(page, "Reveal")).to_be_hidden()
    await settled(page)
    assert not any("/secrets/" in url for url in tab.requested)
    assert (await receipt(server, links))["status"] == "pending"


# The refusals a create can meet, as the service sends them.
REFUSALS = {
    401: {"detail": "Not authenticated"},
    413: {"detail": "Request body too large"},
    429: {"detail": "Too many requests"},
    503: {"detail": "Service busy"},
    507: {"detail": "Storage quota reached"},
}


def refuse_with(status: int, body: dict[str, str]) -> Callable[[Route], Awaitable[None]]:
    async def refuse(route: Route) -> None:
        await route.fulfill(status=status, json=body, headers={"Retry-After": "7"})

    return refuse


@SQLITE_ONLY
async def test_every_refusal_is_in_words(server: Uvicorn, tabs: Tabs) -> None:
    """Each refusal gets a sentence of its own, never a bare status code."""
    tab = await tabs.open()
    page = tab.page
    said: dict[int, str] = {}
    for status, body in REFUSALS.items():
        await page.unroute_all()
        await page.route("**/generate", refuse_with(status, body))
        await page.goto(f"{server.url}/")
        await textbox(page, "Secret").fill("refused")
        await textbox(page, "Passphrase").fill(PASSPHRASE)
        await button(page, "Create link").click()
        said[status] = await alert_text(page)
    assert {status for status, text in said.items() if "HTTP" in text} == set()
    assert len(set(said.values())) == len(said), said

    # The reader's page: busy and rate-limited are not "cannot be revealed".
    link = secret_link(server.url, uuid.uuid4().hex, new_key())
    told: dict[int, str] = {}
    for status in (404, 429, 503):
        await page.unroute_all()
        await page.route("**/secrets/*", refuse_with(status, {"detail": "refused"}))
        await reveal_on_page(page, link)
        told[status] = await alert_text(page)
    assert {status for status, text in told.items() if "HTTP" in text} == set()
    assert len(set(told.values())) == len(told), told


# --- Accessibility --------------------------------------------------------------------------


async def tab_to(page: Page, target: Locator) -> None:
    """Press Tab until `target` has the focus, as a keyboard user moves through a page."""
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await target.evaluate("node => node === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {target}")


@SQLITE_ONLY
async def test_the_flow_works_by_keyboard_alone(server: Uvicorn, tabs: Tabs) -> None:
    sender, reader = await tabs.open(), await tabs.open()
    page = sender.page
    await page.goto(f"{server.url}/")
    await tab_to(page, textbox(page, "Secret"))
    await page.keyboard.type("typed, never clicked")
    await tab_to(page, textbox(page, "Passphrase"))
    await tab_to(page, button(page, "Generate passphrase"))
    await page.keyboard.press("Space")
    passphrase = await textbox(page, "Passphrase").input_value()
    assert len(passphrase) >= 20
    await tab_to(page, page.get_by_label("Expires after", exact=True))
    await tab_to(page, button(page, "Create link"))
    await page.keyboard.press("Enter")
    link = page.get_by_role("textbox", name="Link", exact=True)
    await expect(link).to_have_value(KEY_IN_LINK)

    await reader.page.goto(await link.input_value())
    await tab_to(reader.page, textbox(reader.page, "Passphrase"))
    await reader.page.keyboard.type(passphrase)
    await reader.page.keyboard.press("Enter")
    assert await revealed_text(reader.page) == "typed, never clicked"


async def visit_every_state(
    server: Uvicorn, tabs: Tabs, check: Callable[[Page, str], Awaitable[None]], **options: Any
) -> None:
    """Walk the three pages through their states, calling `check` in each."""
    sender, reader = await tabs.open(**options), await tabs.open(**options)
    page = sender.page
    await page.goto(f"{server.url}/")
    await textbox(page, "Secret").fill("a secret\nwith lines " + "long-word-" * 40)
    await textbox(page, "Passphrase").fill(PASSPHRASE)
    await check(page, "create")
    await button(page, "Create link").click()
    link = page.get_by_role("textbox", name="Link", exact=True)
    await expect(link).to_have_value(KEY_IN_LINK)
    await check(page, "created")
    links = Links(
        await link.input_value(),
        await page.get_by_role("textbox", name="Receipt link", exact=True).input_value(),
    )
    await reader.page.goto(links.secret)
    await expect(button(reader.page, "Reveal")).to_be_visible()
    await check(reader.page, "reveal")
    await textbox(reader.page, "Passphrase").fill("a wrong passphrase")
    await button(reader.page, "Reveal").click()
    await alert_text(reader.page)
    await check(reader.page, "reveal refused")
    await textbox(reader.page, "Passphrase").fill(PASSPHRASE)
    await button(reader.page, "Reveal").click()
    await revealed_text(reader.page)
    await check(reader.page, "revealed")
    await reader.page.goto(links.secret.split("#", 1)[0])
    await alert_text(reader.page)
    await check(reader.page, "reveal without a key")
    await page.goto(links.receipt)
    await expect(page.locator("#status")).to_have_text("revealed")
    await check(page, "receipt")
    pending, _ = await create_sealed_by_rest(server, "still pending")
    await page.goto(pending.receipt)
    await expect(button(page, "Revoke")).to_be_visible()
    await check(page, "receipt pending")


@SQLITE_ONLY
async def test_axe_finds_no_serious_violation(server: Uvicorn, tabs: Tabs) -> None:
    # axe-core as axe-playwright-python bundles it (that package has no type hints).
    source = (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}

    async def axe(page: Page, state: str) -> None:
        # Evaluated, not added as a <script>: the policy rightly refuses inline scripts.
        if not await page.evaluate("() => 'axe' in window"):
            await page.evaluate(source)
        results = await page.evaluate(
            "async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
        )
        found[state] = [
            f"{violation['id']} ({violation['impact']}): {violation['help']}"
            for violation in results
            if violation["impact"] in {"serious", "critical"}
        ]

    await visit_every_state(server, tabs, axe)
    assert {state: problems for state, problems in found.items() if problems} == {}
    assert len(found) == 8


@SQLITE_ONLY
async def test_the_pages_fit_a_narrow_screen(server: Uvicorn, tabs: Tabs) -> None:
    widths: dict[str, int] = {}

    async def measure(page: Page, state: str) -> None:
        widths[state] = await page.evaluate("() => document.documentElement.scrollWidth")

    await visit_every_state(server, tabs, measure, viewport={"width": 320, "height": 640})
    assert len(widths) == 8
    assert {state: width for state, width in widths.items() if width > 320} == {}


# --- Settings -------------------------------------------------------------------------------


def creator_token(server: Uvicorn) -> str:
    """Issue a token with `ots-admin`, as an operator would, against the server's database."""
    database_url = server.log_path.parent / "secrets.db"
    result = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "ots-admin"), "tokens", "create", uuid.uuid4().hex],
        env={**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{database_url}"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def test_token_mode_asks_for_the_creator_token(token_server: Uvicorn, tabs: Tabs) -> None:
    tab = await tabs.open()
    page = tab.page
    await page.goto(f"{token_server.url}/")
    token = textbox(page, "Creator token")
    await expect(token).to_be_visible()
    assert await token.get_attribute("autocomplete") == "off"

    await textbox(page, "Secret").fill("needs a token")
    await textbox(page, "Passphrase").fill(PASSPHRASE)
    await button(page, "Create link").click()
    missing = await alert_text(page)
    assert "token" in missing.lower()
    await settled(page)
    assert not any("/generate" in url for url in tab.requested)

    # A token the service does not know: refused by the server, in words about the token.
    await token.fill("ots_" + "x" * 43)
    await button(page, "Create link").click()
    alert = page.get_by_role("alert")
    await expect(alert).not_to_have_text(missing)
    await expect(alert).to_contain_text(re.compile("token", re.IGNORECASE))
    assert any("/generate" in url for url in tab.requested)

    await token.fill(creator_token(token_server))
    await button(page, "Create link").click()
    await expect(page.get_by_role("textbox", name="Link", exact=True)).to_have_value(KEY_IN_LINK)
    # Held in memory only: neither kept in the page's storage nor left in a field.
    assert await page.evaluate("() => localStorage.length + sessionStorage.length") == 0


async def test_the_page_says_and_enforces_the_instance_limit(
    small_server: Uvicorn, tabs: Tabs
) -> None:
    limit = next(s for s in VECTORS["sizes"] if s["max_envelope_bytes"] == 1024)
    fits = limit["max_plaintext_bytes"]  # 736
    tab = await tabs.open()
    page = tab.page
    await page.goto(f"{small_server.url}/")
    await expect(page.get_by_text(f"{fits} bytes").first).to_be_visible()

    # Counted in UTF-8 bytes: 369 "é" are 738 bytes, one over becomes too long.
    for too_long in ("x" * (fits + 1), "é" * (fits // 2 + 1)):
        await textbox(page, "Secret").fill(too_long)
        await textbox(page, "Passphrase").fill(PASSPHRASE)
        await button(page, "Create link").click()
        assert str(fits) in await alert_text(page)
    await settled(page)
    assert not any("/generate" in url for url in tab.requested)

    # Exactly the limit fits: its envelope is 1024 bytes, which the server takes.
    links = await create_on_page(page, small_server.url, "y" * fits)
    response = await rest(
        small_server, "POST", f"/secrets/{links.secret_key}", json={"passphrase": PASSPHRASE}
    )
    assert len(response.json()["secret"]) == 1024


@pytest.mark.parametrize("web_ui", ["true", "false"])
async def test_web_ui_false_removes_the_pages(web_ui: str) -> None:
    application = create_app(suite_settings(web_ui=web_ui))
    expected = 200 if web_ui == "true" else 404
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for path in ("/", f"/s/{uuid.uuid4().hex}", f"/r/{uuid.uuid4().hex}", "/assets/app.js"):
            assert (await http.get(path)).status_code == expected, path
