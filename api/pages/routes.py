"""Serve the three pages and their two files, with a strict policy and integrity hashes.

The pages are static: their GETs never touch the database, so a link previewer that fetches
`/s/{secret_key}` changes nothing and learns nothing. Each page is rendered once, when the
app is built: the instance's limits go into `<body data-…>`, and each file's SHA-384 into
its `integrity` attribute, so the browser refuses a file that differs from what the page
was built with.
"""

import base64
import hashlib
import html
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from api.settings import Settings

PAGES_DIR = Path(__file__).resolve().parents[2] / "web" / "pages"
PAGE_FILES = {"create": "create.html", "reveal": "reveal.html", "receipt": "receipt.html"}
ASSET_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
ASSETS_PATH = "/assets"

# Nothing but this origin's own files: no inline code, no eval, no frames, no form posts.
# Trusted Types make any use of an HTML-parsing sink (innerHTML) an error, not a risk.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "x-frame-options": "DENY",
}
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+(?::[a-z.]+)?)\}\}")


def integrity(content: bytes) -> str:
    """Return the Subresource Integrity value of `content` (SHA-384)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode("ascii")


class Pages:
    """The rendered pages and the files they load, read from `folder` once."""

    def __init__(self, settings: Settings, folder: Path = PAGES_DIR) -> None:
        self.assets = {name: (folder / name).read_bytes() for name in ASSET_TYPES}
        values = {
            "create_auth": settings.create_auth,
            "max_secret_bytes": str(settings.max_secret_bytes),
            "min_ttl_seconds": str(settings.min_ttl_seconds),
            "max_ttl_seconds": str(settings.max_ttl_seconds),
            "default_ttl_seconds": str(settings.default_ttl_seconds),
            **{f"integrity:{name}": integrity(data) for name, data in self.assets.items()},
        }

        def fill(match: re.Match[str]) -> str:
            return html.escape(values[match.group(1)], quote=True)

        self.html = {
            page: _PLACEHOLDER.sub(fill, (folder / file).read_text(encoding="utf-8"))
            for page, file in PAGE_FILES.items()
        }

    def page(self, name: str) -> HTMLResponse:
        """Return the page `name` with its policy headers."""
        return HTMLResponse(self.html[name], headers=PAGE_HEADERS)


def pages_router(settings: Settings) -> APIRouter:
    """Return the routes of the pages (`/`, `/s/…`, `/r/…`) and of their files."""
    pages = Pages(settings)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def create_page() -> HTMLResponse:
        """Serve the sender's page: encrypt a secret in the browser and make its link."""
        return pages.page("create")

    @router.get("/s/{secret_key}")
    async def reveal_page(secret_key: str) -> HTMLResponse:
        """Serve the reader's page. The key after `#` never reaches the server."""
        del secret_key  # read by the page's script, from its own address
        return pages.page("reveal")

    @router.get("/r/{receipt_key}")
    async def receipt_page(receipt_key: str) -> HTMLResponse:
        """Serve the sender's receipt: what became of the secret, and a way to revoke it."""
        del receipt_key
        return pages.page("receipt")

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> Response:
        """Serve one of the pages' files."""
        if name not in pages.assets:
            raise HTTPException(status_code=404, detail="Not Found")
        return Response(pages.assets[name], media_type=ASSET_TYPES[name], headers=PAGE_HEADERS)

    return router
