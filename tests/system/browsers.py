"""Headless Chromium for the tests that drive pages, launched so that nothing leaves the machine.

Chromium resolves no host name but the loopback address (and the names a test maps to it),
and every request of a tab's context is recorded (address, method, headers, body) and, when
it is for another host, aborted: a regression in a page cannot reach the internet, and the
test sees that it tried.
"""

import contextlib
import os
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Route,
    async_playwright,
)

from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
BASE_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--dns-prefetch-disable",
)
LOOPBACK = "127.0.0.1"
LOCAL_SCHEMES = {"data", "blob", "about"}
# What Chromium says when a page breaks its Content-Security-Policy, its Trusted Types or a
# Subresource Integrity check.
POLICY_MESSAGE = re.compile(
    r"Content.Security.Policy|Refused to|Trusted ?Type|TrustedHTML|TrustedScript|integrity",
    re.IGNORECASE,
)


def resolver_rules(mapped: Sequence[str] = ()) -> str:
    """Chromium's switch that resolves no host but 127.0.0.1 and `mapped` (to 127.0.0.1)."""
    rules = [f"MAP {host} {LOOPBACK}" for host in mapped]
    return "--host-resolver-rules=" + " , ".join([*rules, "MAP * ~NOTFOUND", f"EXCLUDE {LOOPBACK}"])


def require_chromium() -> Path:
    """Return Chromium's path; fail in CI, skip elsewhere, when it is missing."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing (Debian package chromium; scripts/install --test)"
        if IN_CI:
            pytest.fail(message + "; the browser tests are mandatory when CI=true")
        pytest.skip(message)
    return CHROMIUM


@contextlib.asynccontextmanager
async def launch_chromium(mapped_hosts: Sequence[str] = ()) -> AsyncIterator[Browser]:
    """Run headless Chromium that resolves only 127.0.0.1 and `mapped_hosts`."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=[*BASE_ARGS, resolver_rules(mapped_hosts)],
            headless=True,
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Sent:
    """One request as the browser made it."""

    url: str
    method: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """Everything the request carried, as one text to search."""
        lines = [f"{self.method} {self.url}", *(f"{k}: {v}" for k, v in self.headers.items())]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8", errors="replace")


@dataclass
class Tab:
    """A page in a fresh browser context, with every request and console line of the context."""

    page: Page
    context: BrowserContext
    local_hosts: frozenset[str]
    sent: list[Sent] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def requested(self) -> list[str]:
        """The URLs requested, in order."""
        return [request.url for request in self.sent]

    def outside_loopback(self) -> list[str]:
        """The requested URLs that would have left this machine."""
        return [
            url
            for url in self.requested
            if urlsplit(url).scheme not in LOCAL_SCHEMES
            and urlsplit(url).hostname not in self.local_hosts
        ]

    def policy_problems(self) -> list[str]:
        """Console lines about the policy or integrity, and uncaught errors, so far."""
        flagged = [line for line in self.console if POLICY_MESSAGE.search(line)]
        return flagged + [f"uncaught: {error}" for error in self.page_errors]


@contextlib.asynccontextmanager
async def open_tab(
    browser: Browser,
    *,
    mapped_hosts: Sequence[str] = (),
    timeout_ms: float = 60_000,
    **context_options: Any,
) -> AsyncIterator[Tab]:
    """Open a page in a new context that records everything and keeps requests local."""
    context = await browser.new_context(**context_options)
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    tab = Tab(page, context, frozenset({LOOPBACK, *mapped_hosts}))

    async def record_and_keep_local(route: Route) -> None:
        request = route.request
        headers = await request.all_headers()
        tab.sent.append(Sent(request.url, request.method, headers, request.post_data_buffer or b""))
        if urlsplit(request.url).hostname in tab.local_hosts:
            # The page may already be gone (a test ended): nothing left to answer.
            with contextlib.suppress(Error):
                await route.continue_()
        else:
            await route.abort("blockedbyclient")

    def on_console(message: ConsoleMessage) -> None:
        tab.console.append(f"{message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        tab.page_errors.append(f"{error.name}: {error.message}")

    await context.route("**/*", record_and_keep_local)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield tab
    finally:
        await context.close()
