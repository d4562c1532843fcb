"""docs/operations.md's nginx example keeps every key out of the proxy's access log.

The example's `map` replaces a path that carries a key by its route template. Here the map
is read from the document and applied (nginx checks regular expressions in order, the first
match wins, `default` otherwise) to a path of every route of the service that takes a key.
"""

import re
import uuid

import pytest

from api.app import create_app
from api.pages.routes import pages_router
from harness import ROOT
from tests.conftest import suite_settings

DOC = ROOT / "docs" / "operations.md"
_MAP = re.compile(r"map \$uri \$redacted_uri \{\n(?P<body>.*?)\n\}", re.DOTALL)
_ENTRY = re.compile(r'^\s*(?P<key>\S+)\s+(?P<value>"[^"]*"|\S+);\s*$')


def redaction_map() -> list[tuple[str, str]]:
    """The (pattern, value) entries of the example's map, in order."""
    match = _MAP.search(DOC.read_text(encoding="utf-8"))
    assert match, "the nginx example has no `map $uri $redacted_uri` block"
    entries = []
    for line in match.group("body").splitlines():
        entry = _ENTRY.match(line)
        assert entry, line
        entries.append((entry.group("key"), entry.group("value").strip('"')))
    return entries


def redact(uri: str) -> str:
    """What nginx logs for `$uri` with the example's map."""
    default = uri
    for key, value in redaction_map():
        if key == "default":
            default = uri if value == "$uri" else value
        elif key.startswith("~") and re.search(key[1:], uri):
            return value
    return default


def key_routes() -> list[str]:
    """Every route template of the service with a key in its path, the pages' too."""
    settings = suite_settings()
    paths = [*create_app(settings).openapi()["paths"]]
    # The pages are left out of the OpenAPI document.
    paths += [getattr(route, "path", "") for route in pages_router(settings).routes]
    return sorted(template for template in paths if "_key}" in template)


def test_every_key_route_is_logged_as_its_template() -> None:
    templates = key_routes()
    assert set(templates) >= {
        "/secrets/{secret_key}",
        "/receipts/{receipt_key}",
        "/s/{secret_key}",
        "/r/{receipt_key}",
    }
    for template in templates:
        for suffix in ("", "/", "/extra"):
            key = uuid.uuid4().hex
            logged = redact(re.sub(r"\{[^}]+\}", key, template) + suffix)
            assert key not in logged
            assert logged == template


@pytest.mark.parametrize("uri", ["/generate", "/healthz", "/graphql", "/docs"])
def test_paths_without_a_key_are_logged_as_they_are(uri: str) -> None:
    assert redact(uri) == uri
