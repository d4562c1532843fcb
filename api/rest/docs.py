"""Swagger UI and ReDoc served by the service itself, with the assets fastapi-offline ships."""

import functools
from importlib.resources import files

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.http.security_headers import page_content_security_policy

DOCS_ASSETS_PATH = "/docs-assets"
_REDOC_BUNDLE = "redoc.standalone.js"
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

# The docs pages may load nothing from elsewhere. ReDoc's bundle adds its vendor's logo from
# a CDN by itself, and Swagger UI can ask an online validator; the policy stops both.
DOCS_CONTENT_SECURITY_POLICY = page_content_security_policy()
_CSP_HEADER = {"content-security-policy": DOCS_CONTENT_SECURITY_POLICY}


def install_offline_docs(app: FastAPI) -> None:
    """Add Swagger UI and ReDoc pages whose scripts, styles and icon come from this service.

    Build the app with `docs_url=None, redoc_url=None` so FastAPI adds no CDN pages itself.
    """
    if app.openapi_url is None:
        return
    openapi_url = app.openapi_url

    # Registered before the mount, so it shadows the untouched bundle.
    @app.get(f"{DOCS_ASSETS_PATH}/{_REDOC_BUNDLE}", include_in_schema=False)
    async def redoc_bundle() -> Response:
        """ReDoc's script, without the vendor logo it would fetch from a CDN."""
        return Response(_redoc_bundle(), media_type="text/javascript; charset=utf-8")

    app.mount(
        DOCS_ASSETS_PATH,
        StaticFiles(directory=str(files("fastapi_offline") / "static")),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        """Swagger UI: try the REST API from the browser."""
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )
        page.headers.update(_CSP_HEADER)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc: the REST API as a reference document."""
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/{_REDOC_BUNDLE}",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(_CSP_HEADER)
        return page


@functools.cache
def _redoc_bundle() -> bytes:
    bundle = (files("fastapi_offline") / "static" / _REDOC_BUNDLE).read_text(encoding="utf-8")
    # ReDoc's side menu always shows "API docs by Redocly" with a logo from the vendor's CDN,
    # and no option turns it off. An empty image fails to decode and the menu then drops it.
    return bundle.replace(_REDOC_LOGO, "data:,").encode()
