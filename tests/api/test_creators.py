"""Creator tokens: the `ots-admin` command run as an operator runs it, and token mode at work.

The command runs as a subprocess against each test database, with the same DATABASE_URL
as the service. The cross-door table (`tests/api/test_doors_agree.py`) holds the answers both
doors give in token mode; here are the command, what is stored, last use, metrics and logs.
"""

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.domain import creators, service
from api.domain.errors import Unauthenticated
from api.domain.hashing import PassphraseHasher
from api.domain.notifications import token_signing_secret
from api.settings import Settings
from api.storage.database import Database
from api.storage.statements import token_columns
from harness import ROOT

OTS_ADMIN = Path(sys.executable).parent / "ots-admin"
TOKEN = re.compile(r"ots_[A-Za-z0-9_-]{43}")
BODY = {"secret": "made with a token", "passphrase": "token-passphrase"}


def ots_admin(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `ots-admin` with the service's environment."""
    return subprocess.run(  # noqa: S603
        [str(OTS_ADMIN), *args],
        env={**os.environ, "DATABASE_URL": database_url, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def listed(database_url: str) -> dict[str, dict[str, Any]]:
    result = ots_admin(database_url, "tokens", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {record["name"]: record for record in json.loads(result.stdout)}


def test_the_command_is_installed_with_the_package() -> None:
    assert OTS_ADMIN.exists()
    result = subprocess.run(  # noqa: S603
        [str(OTS_ADMIN), "--help"], capture_output=True, text=True, check=True
    )
    assert "tokens" in result.stdout
    assert "storage" in result.stdout


async def test_create_prints_the_token_once_and_stores_only_its_hash(
    database_url: str, db: Database
) -> None:
    name = unique("ci")
    result = ots_admin(database_url, "tokens", "create", name, "--rate", "600/minute")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert TOKEN.fullmatch(token), result.stdout
    assert "shown this once" in result.stderr
    assert len(creators.token_digest(token)) == 32  # 256 bits in, one SHA-256 stored

    # Stored: the hash, never the token; listed: the name and dates, never the token.
    rows = await db.execute(select(token_columns.token_hash).where(token_columns.name == name))
    assert rows == [(creators.token_digest(token),)]
    table = ots_admin(database_url, "tokens", "list")
    as_json = ots_admin(database_url, "tokens", "list", "--json")
    for output in (table.stdout, as_json.stdout, table.stderr, as_json.stderr):
        assert token not in output
        assert token[4:] not in output
    record = listed(database_url)[name]
    assert record["rate_limit"] == "600/minute"
    assert record["created_at"].endswith("Z")
    assert record["last_used_at"] is None
    assert record["revoked_at"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokens", "create", ".bad"], "name must be"),
        (["tokens", "create", "white space"], "name must be"),
        (["tokens", "create", "x" * 65], "name must be"),
        (["tokens", "create", "ok-name", "--rate", "lots"], "rate must be a limit"),
        (["tokens", "revoke", "no-such-token"], "no token is named"),
    ],
)
def test_the_command_refuses_bad_requests_clearly(
    database_url: str, args: list[str], message: str
) -> None:
    result = ots_admin(database_url, *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_name_is_never_reused(database_url: str) -> None:
    name = unique("dup")
    assert ots_admin(database_url, "tokens", "create", name).returncode == 0
    again = ots_admin(database_url, "tokens", "create", name)
    assert again.returncode == 1
    assert "exists already" in again.stderr
    assert ots_admin(database_url, "tokens", "revoke", name).returncode == 0
    assert ots_admin(database_url, "tokens", "create", name).returncode == 1


def test_bad_configuration_and_a_dead_database_are_reported_without_secrets(
    tmp_path: Path,
) -> None:
    bad = ots_admin("mysql://root:hunter2@localhost/x", "tokens", "list")
    assert bad.returncode == 2
    assert "DATABASE_URL" in bad.stderr
    assert "hunter2" not in bad.stderr
    dead = ots_admin("postgresql+asyncpg://u:hunter2@127.0.0.1:1/x", "tokens", "list")
    assert dead.returncode == 3
    assert "does not answer" in dead.stderr
    assert "hunter2" not in dead.stderr


async def test_revoked_tokens_are_refused_from_the_next_request(
    database_url: str, client: httpx.AsyncClient, configure: Any
) -> None:
    configure(CREATE_AUTH="token")
    name = unique("revoke-me")
    token = ots_admin(database_url, "tokens", "create", name).stdout.strip()
    headers = {"authorization": f"Bearer {token}"}
    assert (await client.post("/generate", json=BODY, headers=headers)).status_code == 200

    revoked = ots_admin(database_url, "tokens", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked at" in revoked.stdout
    refused = await client.post("/generate", json=BODY, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].endswith('error="invalid_token"')
    assert listed(database_url)[name]["revoked_at"] is not None
    # Revoking again changes nothing.
    assert ots_admin(database_url, "tokens", "revoke", name).returncode == 0


async def test_last_use_is_recorded_at_most_once_a_minute(
    database_url: str, db: Database, client: httpx.AsyncClient, configure: Any
) -> None:
    configure(CREATE_AUTH="token")
    name = unique("used")
    token = ots_admin(database_url, "tokens", "create", name).stdout.strip()
    headers = {"authorization": f"Bearer {token}"}
    assert (await client.post("/generate", json=BODY, headers=headers)).status_code == 200
    first = listed(database_url)[name]["last_used_at"]
    assert first is not None
    assert (await client.post("/generate", json=BODY, headers=headers)).status_code == 200
    assert listed(database_url)[name]["last_used_at"] == first  # no write per create


async def test_open_mode_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/generate", json=BODY)
    assert response.status_code == 200


async def test_tokens_stay_out_of_logs_metrics_and_answers(
    database_url: str,
    client: httpx.AsyncClient,
    configure: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(CREATE_AUTH="token")
    name = unique("metrics")
    token = ots_admin(database_url, "tokens", "create", name).stdout.strip()
    revoked_name = unique("gone")
    revoked = ots_admin(database_url, "tokens", "create", revoked_name).stdout.strip()
    ots_admin(database_url, "tokens", "revoke", revoked_name)
    caplog.set_level(logging.DEBUG)
    answers = [
        await client.post("/generate", json=BODY, headers={"authorization": f"Bearer {token}"}),
        await client.post("/generate", json=BODY, headers={"authorization": f"Bearer {revoked}"}),
        await client.post(
            "/graphql",
            json={
                "query": 'mutation { createSecret(secret: "s", passphrase: "p") { __typename } }'
            },
            headers={"authorization": f"Bearer {revoked}"},
        ),
    ]
    assert [answer.status_code for answer in answers] == [200, 401, 401]
    metrics = (await client.get("/metrics")).text
    assert f'onetime_secrets_secrets_created_with_token_total{{token="{name}"}}' in metrics
    assert "onetime_secrets_refused_unauthenticated_total" in metrics
    for text in (metrics, caplog.text, *(answer.text for answer in answers)):
        for value in (token, revoked):
            assert value not in text
            assert value[4:] not in text


async def test_the_service_refuses_an_anonymous_create_in_token_mode(
    db: Database, configure: Any, settings: Settings, hasher: PassphraseHasher
) -> None:
    """A backstop behind the doors: a create that reaches the service without a creator."""
    configure(CREATE_AUTH="token")
    with pytest.raises(Unauthenticated):
        await service.create_secret(
            db=db, settings=settings, hasher=hasher, secret="s", passphrase="p"
        )


def test_a_rate_longer_than_its_column_is_refused(database_url: str) -> None:
    result = ots_admin(
        database_url, "tokens", "create", unique("long"), "--rate", "1/minute;" * 8 + "1/minute"
    )
    assert result.returncode == 1
    assert "at most 64 characters" in result.stderr


def test_the_command_in_process(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same commands through `main()`, so coverage sees the door the subprocesses use."""
    from api.admin import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    name = unique("in-process")
    assert main(["tokens", "create", name, "--rate", "5/minute"]) == 0
    token = capsys.readouterr().out.strip()
    assert TOKEN.fullmatch(token)
    assert main(["tokens", "list"]) == 0
    table = capsys.readouterr().out
    assert name in table
    assert token not in table
    assert main(["tokens", "revoke", name]) == 0
    assert main(["tokens", "revoke", unique("missing")]) == 1
    assert main(["tokens", "create", name]) == 1
    assert main(["storage", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out.split("\n", 1)[1])) >= {"stored_bytes"}
    assert main(["storage"]) == 0
    monkeypatch.setenv("DATABASE_URL", "mysql://nowhere/x")
    assert main(["tokens", "list"]) == 2


MASTER = "whsec_" + "YWRtaW4tdGVzdHMtc2lnbmluZy1zZWNyZXQtMzJieXRl"


def test_new_secret_prints_a_signing_secret_the_service_takes() -> None:
    printed = ots_admin("sqlite+aiosqlite:///unused.db", "webhooks", "new-secret")
    assert printed.returncode == 0, printed.stderr
    secret = printed.stdout.strip()
    assert Settings(webhook_signing_secret=secret).webhook_signing_secret is not None
    again = ots_admin("sqlite+aiosqlite:///unused.db", "webhooks", "new-secret").stdout.strip()
    assert again != secret


async def test_a_tokens_signing_secret_is_shown_at_creation_and_rotated(
    database_url: str, db: Database
) -> None:
    name = unique("signing")
    created = ots_admin(database_url, "tokens", "create", name, WEBHOOK_SIGNING_SECRET=MASTER)
    assert created.returncode == 0, created.stderr
    assert TOKEN.fullmatch(created.stdout.strip())  # stdout holds the token alone, as before
    token_id, generation = await creators.signing_identity(db=db, name=name)
    first = token_signing_secret(MASTER, token_id, generation)
    assert f"signed with {first} " in created.stderr

    rotated = ots_admin(
        database_url, "tokens", "rotate-signing-secret", name, WEBHOOK_SIGNING_SECRET=MASTER
    )
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == token_signing_secret(MASTER, token_id, generation + 1)
    assert rotated.stdout.strip() != first
    assert MASTER not in created.stderr + rotated.stdout + rotated.stderr

    for refused, why in (
        (ots_admin(database_url, "tokens", "rotate-signing-secret", name), "WEBHOOK_SIGNING"),
        (
            ots_admin(
                database_url,
                "tokens",
                "rotate-signing-secret",
                unique("nobody"),
                WEBHOOK_SIGNING_SECRET=MASTER,
            ),
            "no token is named",
        ),
    ):
        assert refused.returncode == 1, refused.stderr
        assert why in refused.stderr
