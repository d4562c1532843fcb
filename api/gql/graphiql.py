"""GraphiQL without a CDN: Strawberry's own page, pointed at copies of its files we serve.

Strawberry's page loads seven files (React, GraphiQL, the explorer plugin, their CSS) from
unpkg, with `integrity` hashes. `web/graphiql` pins the same versions through npm; the files
are served at `/graphql-assets/<package>@<version>/<file>`, the layout unpkg itself uses, so
`GRAPHIQL_ASSETS_URL` can name any mirror of that layout instead. The hashes stay in the
page, so a file that differs from what Strawberry was released with is refused.
"""

import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http.ides import get_graphql_ide_html

from api.http.security_headers import page_content_security_policy

NODE_MODULES = Path(__file__).resolve().parents[2] / "web" / "graphiql" / "node_modules"
LOCAL_ASSETS_PATH = "/graphql-assets"

_CDN = "https://unpkg.com"
_ASSET_URL = re.compile(r'https://unpkg\.com/((?:@[^/"]+/)?[^@/"]+)@([^/"]+)/([^"]+)')
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# The file names carry their version, so a browser may keep them for good.
_IMMUTABLE = {"cache-control": "public, max-age=31536000, immutable"}
_GLOBALS = ("React", "ReactDOM", "Cookies", "GraphiQL", "GraphiQLPluginExplorer")


class GraphiQLAssets:
    """The files Strawberry's GraphiQL page asks for, found in an npm `node_modules` folder."""

    def __init__(self, node_modules: Path = NODE_MODULES) -> None:
        self.template = get_graphql_ide_html(graphql_ide="graphiql")
        self.files: dict[str, Path] = {}
        self.missing: list[str] = []
        for package, version, name in _ASSET_URL.findall(self.template):
            url_path = f"{package}@{version}/{name}"
            path = node_modules / package / name
            if path.is_file() and _installed_version(node_modules / package) == version:
                self.files[url_path] = path
            else:
                self.missing.append(url_path)

    def page(self, base_url: str) -> str:
        """Strawberry's page with every file loaded from `base_url` instead of the CDN.

        A small script placed before GraphiQL starts replaces the endless "Loading..." with
        a plain message when the files could not be loaded (mirror down, hash mismatch).
        """
        base_url = base_url.rstrip("/")
        page = _forgetful(self.template).replace(_CDN, html.escape(base_url, quote=True))
        message = json.dumps(
            f"GraphiQL could not load its scripts from {base_url}. Check GRAPHIQL_ASSETS_URL, "
            "or install them with scripts/install. The GraphQL endpoint itself still works."
        ).replace("</", "<\\/")
        condition = " || ".join(f'typeof {name} === "undefined"' for name in _GLOBALS)
        guard = (
            f"<script>\n      if ({condition}) {{\n"
            f'        document.getElementById("graphiql").textContent = {message};\n'
            "      }\n    </script>\n    "
        )
        main_script = page.rindex("<script>")
        return page[:main_script] + guard + page[main_script:]


# Strawberry's page, changed so that nothing typed into the playground outlives it: the
# address bar is never rewritten (the query and variables would land in browser history,
# and in proxy logs on a reload), editor state lives in memory instead of localStorage, and
# no WebSocket URL is set up (subscriptions are not part of this API).
_MEMORY_STORAGE = """
      // Tabs, queries, variables and headers stay in this page's memory, never on disk.
      const memoryStorage = (function () {
        const items = new Map();
        return {
          getItem: (key) => (items.has(key) ? items.get(key) : null),
          setItem: (key, value) => { items.set(key, String(value)); },
          removeItem: (key) => { items.delete(key); },
          clear: () => { items.clear(); },
          key: (index) => Array.from(items.keys())[index] ?? null,
          get length() { return items.size; },
        };
      })();

      function GraphiQLWithExplorer() {"""
_FORGETFUL_EDITS = (
    ("history.replaceState(null, null, newSearch);", "/* the address bar is left alone */"),
    (
        "shouldPersistHeaders: true,",
        "shouldPersistHeaders: false,\n          storage: memoryStorage,",
    ),
    ("        subscriptionUrl,\n", ""),
    ("\n      function GraphiQLWithExplorer() {", _MEMORY_STORAGE),
)


def _forgetful(template: str) -> str:
    for old, new in _FORGETFUL_EDITS:
        if template.count(old) != 1:
            # A Strawberry release changed its page: fail loudly rather than leak quietly.
            raise RuntimeError(f"GraphiQL page changed; cannot apply: {old!r}")
        template = template.replace(old, new)
    return template


def _csp(policy: str) -> dict[str, str]:
    return {"content-security-policy": policy}


def _installed_version(package_dir: Path) -> str | None:
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def _missing_page(missing: list[str]) -> str:
    items = "\n".join(f"<li><code>{html.escape(name)}</code></li>" for name in missing)
    return f"""<!doctype html>
<html>
  <head><title>GraphiQL is not installed</title></head>
  <body>
    <h1>GraphiQL's files are not installed</h1>
    <p>This service serves GraphiQL, React and their CSS itself, so that the playground
    works without internet access. These files are missing:</p>
    <ul>
{items}
    </ul>
    <p>Run <code>scripts/install</code> (it runs <code>npm ci</code> in
    <code>web/graphiql</code>), or set <code>GRAPHIQL_ASSETS_URL</code> to a mirror that
    serves them as <code>URL/package@version/file</code>.</p>
    <p>The GraphQL endpoint itself works: POST your queries to this address.</p>
  </body>
</html>
"""


class OfflineGraphQLRouter(GraphQLRouter[Any, Any]):
    """Strawberry's FastAPI router, whose GraphiQL page loads nothing from a CDN.

    Include `assets_router` in the app as well: it serves the local copies.
    """

    def __init__(
        self,
        *args: Any,
        assets_url: str | None = None,
        assets: GraphiQLAssets | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.assets_url = assets_url or None  # an empty GRAPHIQL_ASSETS_URL means unset
        self.assets = assets if assets is not None else GraphiQLAssets()
        self.assets_router = APIRouter(include_in_schema=False)
        self.assets_router.add_api_route(
            LOCAL_ASSETS_PATH + "/{asset:path}", self._serve_asset, methods=["GET"]
        )

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """Serve GraphiQL from the configured mirror or from this service's own copies."""
        if self.assets_url is not None:
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.assets_url))
            policy = page_content_security_policy(origin)
            return HTMLResponse(self.assets.page(self.assets_url), headers=_csp(policy))
        if self.assets.missing:
            return HTMLResponse(_missing_page(self.assets.missing), status_code=503)
        root = request.scope.get("root_path", "").rstrip("/")
        page = self.assets.page(root + LOCAL_ASSETS_PATH)
        return HTMLResponse(page, headers=_csp(page_content_security_policy()))

    async def _serve_asset(self, asset: str) -> FileResponse:
        path = self.assets.files.get(asset)
        if path is None:
            raise HTTPException(status_code=404, detail="Not Found")
        return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix), headers=_IMMUTABLE)
