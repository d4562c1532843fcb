"""`HEAD` against a real uvicorn process: no body, and no reveal by query string."""

from collections.abc import Iterator

import httpx
import pytest

from harness.uvicorn import Uvicorn
from tests.api.test_head import PASSPHRASE, UNKNOWN_KEY
from tests.system.servers import run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    directory = tmp_path_factory.mktemp("head")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'secrets.db'}",
        "SERVER_LOG": str(directory / "uvicorn.log"),
    }
    with run_server(env) as running:
        yield running


def test_real_server_answers_head_without_a_body(server: Uvicorn) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for path in ("/healthz", "/openapi.json", f"/receipts/{UNKNOWN_KEY}"):
            got, head = http.get(path), http.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b""
            assert head.headers["content-length"] == str(len(got.content)), path
        created = http.post("/generate", json={"secret": "s", "passphrase": PASSPHRASE}).json()
        head = http.head(f"/secrets/{created['secret_key']}?passphrase={PASSPHRASE}")
        assert head.status_code == 405
        revealed = http.get(f"/secrets/{created['secret_key']}?passphrase={PASSPHRASE}")
        assert revealed.json() == {"secret": "s"}
    assert "Traceback" not in server.log()
