"""Interop in both directions between the terminal client `ots` and the pages, in Chromium.

A secret shared with `ots` opens on the reveal page; a secret made on the create page reveals
with `ots reveal`, byte for byte. Both go through a real uvicorn server, on SQLite and
PostgreSQL. Chromium resolves no host but 127.0.0.1 and every request is recorded
(`tests/system/browsers.py`): each test ends by checking that nothing tried to leave the machine and
that Chromium reported no policy violation. Waits are Playwright's `expect`; nothing sleeps.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from harness.uvicorn import Uvicorn
from tests.system.browsers import Tab, launch_chromium, open_tab
from tests.system.servers import run_server

OTS = Path(sys.executable).with_name("ots")
RUN_SECONDS = 120
# Generous: a loaded two-core machine is slow, and only a broken page waits this long.
expect.set_options(timeout=60_000)
PASSPHRASE = "interop passphrase ✓"
LINK = re.compile(r"/s/[0-9a-f]{32}#[A-Za-z0-9_-]{43}$")


def ots(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the installed `ots` with no OTS_* from outside and no controlling terminal."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("OTS_")}
    return subprocess.run(  # noqa: S603
        [str(OTS), *args],
        input=stdin,
        env={**clean, **env},
        capture_output=True,
        timeout=RUN_SECONDS,
        start_new_session=True,
        check=False,
    )


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """The service on the current backend."""
    log = tmp_path_factory.mktemp("cli-pages") / "uvicorn.log"
    with run_server({"DATABASE_URL": module_database_url, "SERVER_LOG": str(log)}) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as launched:
        yield launched


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    """A fresh context that must end with no policy violation and nothing sent away."""
    async with open_tab(browser, viewport={"width": 1024, "height": 800}) as opened:
        yield opened
        problems, outside = opened.policy_problems(), opened.outside_loopback()
    assert (problems, outside) == ([], [])


async def test_a_secret_shared_with_ots_opens_on_the_page(server: Uvicorn, tab: Tab) -> None:
    # Text area values normalise CRLF to LF, so the text has only LF line endings.
    text = "shared from a terminal ✓ 🔐\nsecond line\n"
    shared = await asyncio.to_thread(
        ots,
        "share",
        "--json",
        "--server",
        server.url,
        stdin=text.encode(),
        OTS_PASSPHRASE=PASSPHRASE,
    )
    assert shared.returncode == 0, shared.stderr.decode()
    links = json.loads(shared.stdout)

    page = tab.page
    await page.goto(links["link"])
    await page.get_by_label("Passphrase", exact=True).filter(visible=True).fill(PASSPHRASE)
    await page.get_by_role("button", name="Reveal", exact=True).click()
    secret = page.get_by_role("textbox", name="Secret", exact=True)
    await expect(secret).to_be_visible()
    assert await secret.input_value() == text
    # The page left the key in no request it made.
    fragment = links["link"].rsplit("#", 1)[1]
    assert not [sent.url for sent in tab.sent if fragment in sent.text()]

    status = await asyncio.to_thread(ots, "status", links["receipt_link"], "--json")
    assert json.loads(status.stdout)["status"] == "revealed", status.stderr.decode()


async def test_a_secret_made_on_the_page_reveals_with_ots(server: Uvicorn, tab: Tab) -> None:
    text = "made on the page ✓ 🔑\nline two\n"
    page = tab.page
    await page.goto(f"{server.url}/")
    await page.get_by_label("Secret", exact=True).filter(visible=True).fill(text)
    await page.get_by_label("Passphrase", exact=True).filter(visible=True).fill(PASSPHRASE)
    await page.get_by_role("button", name="Create link", exact=True).click()
    link_field = page.get_by_role("textbox", name="Link", exact=True)
    await expect(link_field).to_have_value(LINK)
    link = await link_field.input_value()
    assert link.startswith(f"{server.url}/s/")

    revealed = await asyncio.to_thread(ots, "reveal", link, OTS_PASSPHRASE=PASSPHRASE)
    assert revealed.returncode == 0, revealed.stderr.decode()
    assert revealed.stdout == text.encode("utf-8")
