"""Token mode on a real server: the operator issues and revokes tokens with `ots-admin`."""

from pathlib import Path

import httpx

from tests.api.test_creators import BODY, ots_admin, unique
from tests.system.servers import run_server


def test_token_mode_end_to_end_on_a_real_server(database_url: str, tmp_path: Path) -> None:
    """An operator's day: start in token mode, issue a token, create with it, revoke it."""
    name = unique("e2e")
    env = {
        "DATABASE_URL": database_url,
        "CREATE_AUTH": "token",
        "SERVER_LOG": str(tmp_path / "uvicorn.log"),
    }
    with run_server(env, workers=2) as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/generate", json=BODY).status_code == 401
        token = ots_admin(database_url, "tokens", "create", name, "--rate", "3/hour").stdout
        headers = {"authorization": f"Bearer {token.strip()}"}
        answers = [http.post("/generate", json=BODY, headers=headers) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
        revealed = http.post(
            f"/secrets/{answers[0].json()['secret_key']}",
            json={"passphrase": BODY["passphrase"]},
        )
        assert revealed.json() == {"secret": BODY["secret"]}  # the recipient needs no token
        ots_admin(database_url, "tokens", "revoke", name)
        assert http.post("/generate", json=BODY, headers=headers).status_code == 401
        log = server.log()
    assert token.strip() not in log
    assert token.strip()[4:] not in log
