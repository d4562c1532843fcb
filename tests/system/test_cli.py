"""The terminal client `ots`, installed as a command, end to end against a real uvicorn server.

Every run is a subprocess of the installed `ots` with an environment of the test's making
(nothing `OTS_*` leaks in from outside) and, with `start_new_session`, no controlling
terminal, so nothing can prompt; the prompt tests give it a pseudo-terminal of their own and
type into it. Round trips run on SQLite and PostgreSQL. Usage errors and the size limit are
checked against a port where nothing listens: exit 2 rather than 3 proves that no request
was made. Failure messages are checked for words, never a traceback, and never the key,
passphrase, token or plaintext.
"""

import contextlib
import fcntl
import json
import os
import re
import select
import stat
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import coverage
import httpx
import pytest

from harness import ROOT
from harness.ports import free_port
from harness.uvicorn import Uvicorn
from ots import __version__
from ots.envelope import encode_key, new_key
from tests.system.servers import run_server

OTS = Path(sys.executable).with_name("ots")
OTS_ADMIN = Path(sys.executable).with_name("ots-admin")
# Generous: a loaded two-core machine is slow, and only a hung client reaches these.
RUN_SECONDS = 120
PATIENCE_SECONDS = 60
PASSPHRASE = "cli passphrase ✓ 7f3a"
TEXT = "user: zoë\npassword: Ünïcødé-✓ 🔑\n".encode()
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
GENERATED = re.compile(r"Passphrase: ([0-9a-hjkmnp-tv-z]{5}(?:-[0-9a-hjkmnp-tv-z]{5}){4})\n")
DEFAULT_LIMIT = 49_120  # the largest plaintext in a 65,536-byte envelope (docs/e2e.md)


# --- Running the client ------------------------------------------------------------------


def environment(**extra: str) -> dict[str, str]:
    """The outer environment without any OTS_* variable, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTS_")}
    return {**env, **extra}


def measured() -> tuple[list[str], dict[str, str]]:
    """The command that runs `ots`, and its environment, under coverage when the suite is.

    `ots` runs as a process of its own here, which the suite's coverage cannot see; under
    `coverage run --parallel-mode` it leaves a data file that pytest-cov combines at the end.
    """
    if coverage.Coverage.current() is None:
        return [str(OTS)], {}
    command = [sys.executable, "-m", "coverage", "run", "--parallel-mode"]
    command += [f"--rcfile={ROOT / 'pyproject.toml'}", "-m", "ots.cli"]
    return command, {"COVERAGE_FILE": str(ROOT / ".coverage")}


def ots(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run `ots` with no controlling terminal; return what it did."""
    command, coverage_env = measured()
    return subprocess.run(  # noqa: S603
        [*command, *args],
        input=stdin,
        env=environment(**coverage_env, **env),
        capture_output=True,
        timeout=RUN_SECONDS,
        start_new_session=True,
        check=False,
    )


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode("utf-8", errors="replace")


def assert_tells_nothing(result: subprocess.CompletedProcess[bytes], *hidden: str) -> None:
    """The run failed in words: no traceback, and none of `hidden` on either stream."""
    text = err(result)
    assert text.startswith("ots: "), text
    assert "Traceback" not in text
    shown = text + result.stdout.decode("utf-8", errors="replace")
    for value in hidden:
        assert value not in shown


@dataclass(frozen=True)
class Shared:
    """What `ots share --json` printed."""

    link: str
    receipt_link: str
    secret_key: str
    receipt_key: str
    expires_at: str
    public_id: str

    @property
    def fragment(self) -> str:
        return self.link.rsplit("#", 1)[1]

    @property
    def keyless(self) -> str:
        return self.link.split("#", 1)[0]


def share(server: Uvicorn, data: bytes = TEXT, *args: str, passphrase: str = PASSPHRASE) -> Shared:
    """Share `data` from standard input; return the links."""
    result = ots(
        "share", "--json", "--server", server.url, *args, stdin=data, OTS_PASSPHRASE=passphrase
    )
    assert result.returncode == 0, err(result)
    return Shared(**json.loads(result.stdout))


def reveal(
    link: str, *args: str, passphrase: str = PASSPHRASE
) -> subprocess.CompletedProcess[bytes]:
    return ots("reveal", link, *args, OTS_PASSPHRASE=passphrase)


def receipt(server: Uvicorn, receipt_key: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/receipts/{receipt_key}", timeout=RUN_SECONDS)
    assert response.status_code == 200, response.text
    return dict(response.json())


def rest_reveal(server: Uvicorn, secret_key: str, passphrase: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/secrets/{secret_key}",
        json={"passphrase": passphrase},
        timeout=RUN_SECONDS,
    )


def untouched(server: Uvicorn, shared: Shared) -> bool:
    """Whether the secret is still pending with no attempt spent."""
    now = receipt(server, shared.receipt_key)
    return (now["status"], now["failed_attempts"]) == ("pending", 0)


def moment(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


# --- Servers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """The service on the current backend."""
    log = tmp_path_factory.mktemp("cli") / "uvicorn.log"
    with run_server({"DATABASE_URL": module_database_url, "SERVER_LOG": str(log)}) as running:
        yield running


def _sqlite_server(folder: Path, **env: str) -> contextlib.AbstractContextManager[Uvicorn]:
    database = f"sqlite+aiosqlite:///{folder / 'secrets.db'}"
    return run_server({"DATABASE_URL": database, "SERVER_LOG": str(folder / "log"), **env})


@dataclass(frozen=True)
class TokenServer:
    server: Uvicorn
    token: str


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """A server where creating needs a creator token, and a token made by `ots-admin`."""
    folder = tmp_path_factory.mktemp("cli-token")
    with _sqlite_server(folder, CREATE_AUTH="token") as running:
        # The server has migrated the database by now; ots-admin writes the token into it.
        made = subprocess.run(  # noqa: S603
            [str(OTS_ADMIN), "tokens", "create", "cli-tests"],
            env={**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'secrets.db'}"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_SECONDS,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        yield TokenServer(running, made.stdout.strip())


@pytest.fixture(scope="module")
def down_url() -> str:
    """A server address where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


# --- Help, version, usage ----------------------------------------------------------------

NOWHERE_DATABASE = "postgresql+asyncpg://nobody@127.0.0.1:9/nothing"


def test_help_and_version_need_no_server_or_database() -> None:
    helped = ots("--help", DATABASE_URL=NOWHERE_DATABASE)
    assert helped.returncode == 0, err(helped)
    text = helped.stdout.decode()
    for command in ("share", "reveal", "status", "revoke", "wait"):
        assert command in text
    # The exit codes table, every row of it.
    table = text.split("exit status:", 1)[1]
    for code, words in [
        ("0", "success"),
        ("1", "not found or refused"),
        ("2", "usage"),
        ("3", "unavailable"),
        ("4", "authentication"),
        ("5", "quota"),
        ("124", "timeout"),
    ]:
        assert re.search(rf"^\s+{code}\s+.*{words}", table, re.MULTILINE), (code, table)
    for variable in ("OTS_SERVER", "OTS_PASSPHRASE", "OTS_TOKEN", "OTS_DEBUG"):
        assert variable in table

    version = ots("--version", DATABASE_URL=NOWHERE_DATABASE)
    assert (version.returncode, version.stdout.decode()) == (0, f"ots {__version__}\n")


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "share",
            ["--ttl", "--passphrase-file", "--generate-passphrase", "--json", "--max-secret-bytes"],
        ),
        ("reveal", ["--passphrase-file", "--output", "--plain"]),
        ("status", ["--json"]),
        ("revoke", ["--json"]),
        ("wait", ["--timeout"]),
    ],
)
def test_every_command_has_help(command: str, options: list[str]) -> None:
    result = ots(command, "--help", DATABASE_URL=NOWHERE_DATABASE)
    assert result.returncode == 0, err(result)
    text = result.stdout.decode()
    assert text.startswith(f"usage: ots {command}")
    for option in [*options, "--server", "--token-file"]:
        assert option in text
    assert "--token " not in text  # a token is never a plain flag: process lists show them
    assert "exit status:" in text


@pytest.mark.parametrize(
    ("args", "stdin", "env", "message"),
    [
        ([], b"", {}, "required: COMMAND"),
        (["share", "--no-such-option"], TEXT, {}, "unrecognized arguments"),
        (["share"], TEXT, {"OTS_SERVER": ""}, "no server"),
        (["share", "--server", "ftp://example.org"], TEXT, {}, "http:// or https://"),
        (["share", "--ttl", "2w"], TEXT, {}, "--ttl takes"),
        (["share", "--generate-passphrase"], TEXT, {}, "leave out --passphrase-file"),
        (["share", "--max-secret-bytes", "0"], TEXT, {}, "positive number of bytes"),
        (["share", "--ttl", "1h30m"], TEXT, {}, "--ttl takes"),
        (["share"], b"", {}, "the secret is empty"),
        (["share", "/no/such/file"], b"", {}, "cannot read /no/such/file"),
        (["share", "--passphrase-file", "/no/such/file"], TEXT, {}, "passphrase file"),
        (["share", "--token-file", "/no/such/file"], TEXT, {}, "cannot read the token file"),
        (["share"], TEXT, {"OTS_PASSPHRASE": ""}, "no passphrase: use --passphrase-file"),
        (["share", "--max-secret-bytes", "100"], b"x" * 44, {}, "at most 43 fit"),
        (["share"], b"x" * 44, {"OTS_MAX_SECRET_BYTES": "100"}, "at most 43 fit"),
        (["share"], b"x" * (DEFAULT_LIMIT + 1), {}, f"at most {DEFAULT_LIMIT} fit"),
        (["reveal", "not a link"], b"", {}, "expected an http:// or https:// link"),
        (["reveal", "{server}/x/" + "a" * 32], b"", {}, "expected a link of the form"),
        (["reveal", "{server}/s/" + "a" * 32], b"", {}, "may have lost it"),
        (["reveal", "{server}/s/" + "a" * 32 + "#abc"], b"", {}, "damaged"),
        (["reveal", "{server}/s/" + "a" * 32 + "#{key}"], b"", {"OTS_PASSPHRASE": ""}, "no pass"),
        (["status", "{server}/s/" + "a" * 32], b"", {}, "expected a link of the form"),
        (["revoke", "{server}"], b"", {}, "expected a link of the form"),
        (["wait", "{server}/r/" + "a" * 32, "--timeout", "soon"], b"", {}, "number of seconds"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    down_url: str, args: list[str], stdin: bytes, env: dict[str, str], message: str
) -> None:
    """Exit 2 against a server that is down proves nothing was sent: a request would give 3."""
    key = encode_key(new_key())
    argv = [arg.format(server=down_url, key=key) for arg in args]
    given = {"OTS_SERVER": down_url, "OTS_PASSPHRASE": PASSPHRASE, **env}
    result = ots(*argv, stdin=stdin, **given)
    assert result.returncode == 2, err(result)
    assert message in err(result)
    assert "Traceback" not in err(result)
    for hidden in (key, PASSPHRASE, TEXT.decode()):
        assert hidden not in err(result)


def test_output_to_an_existing_file_is_refused_before_any_request(
    down_url: str, tmp_path: Path
) -> None:
    existing = tmp_path / "kept"
    existing.write_bytes(b"kept as it was")
    link = f"{down_url}/s/{'a' * 32}#{encode_key(new_key())}"
    result = reveal(link, "-o", str(existing))
    assert result.returncode == 2, err(result)
    assert "cannot create" in err(result)
    assert existing.read_bytes() == b"kept as it was"


@pytest.mark.parametrize(
    ("limit", "size", "code"),
    [("100", 43, 3), ("100", 44, 2), (None, DEFAULT_LIMIT, 3), (None, DEFAULT_LIMIT + 1, 2)],
)
def test_the_size_limit_is_the_envelope_bound(
    down_url: str, limit: str | None, size: int, code: int
) -> None:
    """The largest secret that fits goes on to the network (3 here); one more byte is 2."""
    env = {} if limit is None else {"OTS_MAX_SECRET_BYTES": limit}
    result = ots("share", "--server", down_url, stdin=b"\xff" * size, OTS_PASSPHRASE="p", **env)
    assert result.returncode == code, err(result)
    assert "Traceback" not in err(result)


# --- A server that is down ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["share", "reveal", "status", "revoke", "wait"])
def test_a_server_that_is_down_exits_3(down_url: str, command: str) -> None:
    key = encode_key(new_key())
    argv = {
        "share": ["share", "--server", down_url],
        "reveal": ["reveal", f"{down_url}/s/{'b' * 32}#{key}"],
        "status": ["status", f"{down_url}/r/{'c' * 32}"],
        "revoke": ["revoke", f"{down_url}/r/{'c' * 32}"],
        "wait": ["wait", f"{down_url}/r/{'c' * 32}", "--timeout", "600"],
    }[command]
    result = ots(*argv, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE)
    assert result.returncode == 3, err(result)
    assert "cannot reach the server" in err(result)
    assert_tells_nothing(result, key, PASSPHRASE, TEXT.decode(), "b" * 32, "c" * 32)


# --- Sharing and revealing, on both databases --------------------------------------------


@pytest.mark.parametrize("source", ["stdin", "-", "FILE"])
def test_share_prints_the_link_and_the_receipt_link(
    server: Uvicorn, tmp_path: Path, source: str
) -> None:
    """Line 1 is the link with its key, line 2 the receipt link; the bytes come back as sent."""
    data = b"a secret with a trailing newline \xe2\x9c\x93\n"
    path = tmp_path / "secret.txt"
    path.write_bytes(data)
    where = {"stdin": [], "-": ["-"], "FILE": [str(path)]}[source]
    stdin = b"" if source == "FILE" else data
    result = ots("share", *where, "--server", server.url, stdin=stdin, OTS_PASSPHRASE=PASSPHRASE)
    assert result.returncode == 0, err(result)
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2, lines
    base = re.escape(server.url)
    assert re.fullmatch(rf"{base}/s/[0-9a-f]{{32}}#[A-Za-z0-9_-]{{43}}", lines[0]), lines
    assert re.fullmatch(rf"{base}/r/[0-9a-f]{{32}}", lines[1]), lines
    assert "Expires" in err(result)

    revealed = reveal(lines[0])
    assert revealed.returncode == 0, err(revealed)
    assert revealed.stdout == data


def test_share_json(server: Uvicorn) -> None:
    result = ots("share", "--json", "--server", server.url, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE)
    assert result.returncode == 0, err(result)
    shown = json.loads(result.stdout)
    assert set(shown) == {
        "link",
        "receipt_link",
        "secret_key",
        "receipt_key",
        "expires_at",
        "public_id",
    }
    assert shown["link"].startswith(f"{server.url}/s/{shown['secret_key']}#")
    assert shown["receipt_link"] == f"{server.url}/r/{shown['receipt_key']}"
    assert receipt(server, shown["receipt_key"])["expires_at"] == shown["expires_at"]


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        ("1h", 3600),
        ("1d", 86_400),
        ("7d", 604_800),
        ("30d", 2_592_000),
        ("90", 90),
        (None, 604_800),  # the server's default
    ],
)
def test_ttl_sets_the_expiry(server: Uvicorn, ttl: str | None, seconds: int) -> None:
    shared = share(server, TEXT, *([] if ttl is None else ["--ttl", ttl]))
    now = receipt(server, shared.receipt_key)
    assert now["expires_at"] == shared.expires_at
    assert (moment(now["expires_at"]) - moment(now["created_at"])).total_seconds() == seconds


@pytest.mark.parametrize("to", ["stdout", "file"])
def test_binary_bytes_round_trip(server: Uvicorn, tmp_path: Path, to: str) -> None:
    """A PNG-like file of the largest size that fits (NUL, invalid UTF-8) comes back as is."""
    head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xc3\x28"
    data = head + os.urandom(DEFAULT_LIMIT - len(head))
    path = tmp_path / "image.png"
    path.write_bytes(data)
    result = ots("share", str(path), "--json", "--server", server.url, OTS_PASSPHRASE="p")
    assert result.returncode == 0, err(result)
    link = json.loads(result.stdout)["link"]

    if to == "stdout":
        revealed = reveal(link, passphrase="p")
        assert revealed.returncode == 0, err(revealed)
        assert revealed.stdout == data
        return
    out = tmp_path / "out.png"
    revealed = reveal(link, "-o", str(out), passphrase="p")
    assert revealed.returncode == 0, err(revealed)
    assert revealed.stdout == b""
    assert out.read_bytes() == data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_output_to_an_existing_file_spends_nothing(server: Uvicorn, tmp_path: Path) -> None:
    shared = share(server)
    existing = tmp_path / "existing"
    existing.write_bytes(b"mine")
    refused = reveal(shared.link, "-o", str(existing))
    assert refused.returncode == 2, err(refused)
    assert_tells_nothing(refused, shared.fragment, PASSPHRASE, TEXT.decode())
    assert existing.read_bytes() == b"mine"
    assert untouched(server, shared)
    assert reveal(shared.link).stdout == TEXT


def test_a_failed_reveal_leaves_no_output_file(server: Uvicorn, tmp_path: Path) -> None:
    shared = share(server)
    out = tmp_path / "never"
    result = reveal(shared.link, "-o", str(out), passphrase="wrong")
    assert result.returncode == 1, err(result)
    assert not out.exists()


def test_a_wrong_passphrase_counts_then_the_right_one_reveals_once(server: Uvicorn) -> None:
    shared = share(server)
    wrong = reveal(shared.link, passphrase="not the passphrase")
    assert wrong.returncode == 1, err(wrong)
    assert wrong.stdout == b""
    assert "passphrase is wrong" in err(wrong)
    assert_tells_nothing(wrong, shared.fragment, "not the passphrase", TEXT.decode())
    now = receipt(server, shared.receipt_key)
    assert (now["status"], now["failed_attempts"]) == ("pending", 1)

    right = reveal(shared.link)
    assert (right.returncode, right.stdout) == (0, TEXT), err(right)
    again = reveal(shared.link)
    assert again.returncode == 1, err(again)
    assert again.stdout == b""
    assert_tells_nothing(again, shared.fragment, PASSPHRASE, TEXT.decode())
    assert receipt(server, shared.receipt_key)["status"] == "revealed"


def test_passphrase_file_loses_its_trailing_newline(server: Uvicorn, tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_text("from a file ✓\n", encoding="utf-8")
    result = ots(
        "share", "--json", "--passphrase-file", str(path), "--server", server.url, stdin=TEXT
    )
    assert result.returncode == 0, err(result)
    link = json.loads(result.stdout)["link"]
    revealed = reveal(link, passphrase="from a file ✓")
    assert (revealed.returncode, revealed.stdout) == (0, TEXT), err(revealed)


def test_reveal_reads_the_passphrase_file_too(server: Uvicorn, tmp_path: Path) -> None:
    shared = share(server, passphrase="read from a file")
    path = tmp_path / "passphrase"
    path.write_text("read from a file\n", encoding="utf-8")
    revealed = ots("reveal", shared.link, "--passphrase-file", str(path))
    assert (revealed.returncode, revealed.stdout) == (0, TEXT), err(revealed)


def test_generate_passphrase_prints_it_on_stderr(server: Uvicorn) -> None:
    result = ots("share", "--generate-passphrase", "--server", server.url, stdin=TEXT)
    assert result.returncode == 0, err(result)
    found = GENERATED.search(err(result))
    assert found is not None, err(result)
    words = found.group(1)
    assert words not in result.stdout.decode()
    link = result.stdout.decode().splitlines()[0]
    revealed = reveal(link, passphrase=words)
    assert (revealed.returncode, revealed.stdout) == (0, TEXT), err(revealed)


@pytest.mark.parametrize(("tail", "message"), [("", "may have lost it"), ("#", "may have lost it")])
def test_a_link_without_its_key_spends_nothing(server: Uvicorn, tail: str, message: str) -> None:
    shared = share(server)
    result = reveal(shared.keyless + tail)
    assert result.returncode == 2, err(result)
    assert message in err(result)
    assert "nothing was spent" in err(result)
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode())
    assert untouched(server, shared)
    assert reveal(shared.link).stdout == TEXT


def test_a_damaged_key_spends_nothing(server: Uvicorn) -> None:
    shared = share(server)
    result = reveal(shared.keyless + "#abc")
    assert result.returncode == 2, err(result)
    assert "damaged" in err(result)
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode(), shared.fragment)
    assert untouched(server, shared)


def test_another_key_says_the_link_is_incomplete_and_the_secret_is_gone(
    server: Uvicorn,
) -> None:
    shared = share(server)
    other = encode_key(new_key())
    result = reveal(f"{shared.keyless}#{other}")
    assert result.returncode == 1, err(result)
    assert "incomplete" in err(result)
    assert result.stdout == b""
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode(), shared.fragment, other)
    assert receipt(server, shared.receipt_key)["status"] == "revealed"
    assert rest_reveal(server, shared.secret_key, PASSPHRASE).status_code == 404


def test_plain_prints_what_was_stored_through_the_api(server: Uvicorn) -> None:
    stored = "stored in plain ✓ 🔑\nsecond line\n"
    created = httpx.post(
        f"{server.url}/generate",
        json={"secret": stored, "passphrase": PASSPHRASE},
        timeout=RUN_SECONDS,
    ).json()
    result = reveal(f"{server.url}/s/{created['secret_key']}", "--plain")
    assert (result.returncode, result.stdout) == (0, stored.encode()), err(result)


def test_plain_on_an_encrypted_secret_says_it_needed_the_key(server: Uvicorn) -> None:
    shared = share(server)
    result = reveal(shared.keyless, "--plain")
    assert result.returncode == 1, err(result)
    assert "end-to-end encrypted" in err(result)
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode())
    assert receipt(server, shared.receipt_key)["status"] == "revealed"


# --- Following: status, revoke, wait -----------------------------------------------------


def test_status_in_text_and_json(server: Uvicorn) -> None:
    shared = share(server)
    text = ots("status", shared.receipt_link)
    assert text.returncode == 0, err(text)
    lines = text.stdout.decode().splitlines()
    assert lines[0] == "status: pending"
    assert [line.split(":", 1)[0] for line in lines] == [
        "status",
        "created",
        "expires",
        "failed attempts",
    ]
    assert lines[-1] == "failed attempts: 0"

    reveal(shared.link, passphrase="wrong")
    as_json = ots("status", shared.receipt_link, "--json")
    assert as_json.returncode == 0, err(as_json)
    assert json.loads(as_json.stdout) == receipt(server, shared.receipt_key)
    assert json.loads(as_json.stdout)["failed_attempts"] == 1


def test_status_of_an_unknown_receipt_exits_1(server: Uvicorn) -> None:
    result = ots("status", f"{server.url}/r/{'d' * 32}")
    assert result.returncode == 1, err(result)
    assert "no such receipt" in err(result)
    assert_tells_nothing(result, "d" * 32)


def test_revoke_destroys_a_pending_secret(server: Uvicorn) -> None:
    shared = share(server)
    result = ots("revoke", shared.receipt_link)
    assert result.returncode == 0, err(result)
    assert result.stdout.decode().splitlines()[0] == "status: revoked"
    assert receipt(server, shared.receipt_key)["status"] == "revoked"
    gone = reveal(shared.link)
    assert gone.returncode == 1, err(gone)


def test_revoke_after_the_reveal_exits_1(server: Uvicorn) -> None:
    shared = share(server)
    assert reveal(shared.link).returncode == 0
    result = ots("revoke", shared.receipt_link, "--json")
    assert result.returncode == 1, err(result)
    assert json.loads(result.stdout)["status"] == "revealed"
    assert "nothing to revoke" in err(result)


def _start_wait(shared: Shared, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        [str(OTS), "wait", shared.receipt_link, *args],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_wait_ends_0_when_revealed(server: Uvicorn) -> None:
    """Whether `wait` polls before or after the reveal, it ends the same way."""
    shared = share(server)
    waiting = _start_wait(shared)
    try:
        assert rest_reveal(server, shared.secret_key, PASSPHRASE).status_code == 200
        out, error = waiting.communicate(timeout=RUN_SECONDS)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert (waiting.returncode, out) == (0, b"revealed\n"), error


def test_wait_ends_1_when_revoked(server: Uvicorn) -> None:
    shared = share(server)
    waiting = _start_wait(shared)
    try:
        assert ots("revoke", shared.receipt_link).returncode == 0
        out, error = waiting.communicate(timeout=RUN_SECONDS)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert (waiting.returncode, out) == (1, b"revoked\n"), error


def test_wait_times_out_with_124(server: Uvicorn) -> None:
    shared = share(server)
    result = ots("wait", shared.receipt_link, "--timeout", "1")
    assert result.returncode == 124, err(result)
    assert "still pending" in err(result)
    assert untouched(server, shared)


# --- What the server refuses -------------------------------------------------------------


@SQLITE_ONLY
def test_a_ttl_the_server_refuses_exits_1(server: Uvicorn) -> None:
    result = ots(
        "share", "--ttl", "31d", "--server", server.url, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE
    )
    assert result.returncode == 1, err(result)
    assert "ttl_seconds must be between" in err(result)
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode())


@pytest.mark.parametrize(
    ("given", "code"),
    [("none", 4), ("env", 0), ("file", 0), ("wrong env", 4), ("wrong file", 4)],
)
def test_token_mode(token_server: TokenServer, tmp_path: Path, given: str, code: int) -> None:
    """The token comes from OTS_TOKEN or a file, never the arguments, and is never shown."""
    token = token_server.token
    wrong = "ots_" + "A" * 43
    value = {"none": "", "env": token, "file": token, "wrong env": wrong, "wrong file": wrong}
    args = ["share", "--server", token_server.server.url]
    env = {"OTS_PASSPHRASE": PASSPHRASE, "OTS_DEBUG": "1"}
    if given.endswith("file"):
        path = tmp_path / "token"
        path.write_text(value[given] + "\n", encoding="utf-8")
        args += ["--token-file", str(path)]
    elif given != "none":
        env["OTS_TOKEN"] = value[given]
    result = ots(*args, stdin=TEXT, **env)
    assert result.returncode == code, err(result)
    assert not any(token in arg or token[4:] in arg for arg in args)
    for output in (result.stdout.decode(), err(result)):
        assert token[4:] not in output
        assert wrong[4:] not in output
    assert "Traceback" not in err(result)
    if code == 4:
        assert "creator token" in err(result)
        assert result.stdout == b""
    else:
        link = result.stdout.decode().splitlines()[0]
        assert reveal(link).stdout == TEXT


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """A server that keeps one secret at a time, of at most 1024 bytes."""
    folder = tmp_path_factory.mktemp("cli-small")
    with _sqlite_server(folder, MAX_LIVE_SECRETS="1", MAX_SECRET_BYTES="1024") as running:
        yield running


def test_a_full_store_exits_5(small_server: Uvicorn) -> None:
    args = ["share", "--server", small_server.url]
    assert ots(*args, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE).returncode == 0
    result = ots(*args, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE)
    assert result.returncode == 5, err(result)
    assert "no room" in err(result)
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode())


def test_a_secret_over_the_servers_smaller_limit_is_refused_in_words(
    small_server: Uvicorn,
) -> None:
    """The client checks its own idea of the limit; the server's answer, if smaller, is shown."""
    data = b"s" * 1000  # fits the default bound, not a 1024-byte envelope
    args = ["share", "--server", small_server.url]
    result = ots(*args, stdin=data, OTS_PASSPHRASE=PASSPHRASE)
    assert result.returncode == 1, err(result)
    assert "secret must be at most 1024 bytes" in err(result)
    assert_tells_nothing(result, PASSPHRASE, data.decode())
    told = ots(*args, "--max-secret-bytes", "1024", stdin=data, OTS_PASSPHRASE=PASSPHRASE)
    assert told.returncode == 2, err(told)


def test_share_asks_to_be_notified_where_the_server_allows(server: Uvicorn, tmp_path: Path) -> None:
    hook = "https://hooks.example.com/ots?token=cli-hook-canary"
    args = ["share", "--json", "--notify-url", hook]
    refused = ots(*args, "--server", server.url, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE)
    assert refused.returncode == 1, err(refused)
    assert "notify_url refused: webhooks are not enabled" in err(refused)
    assert_tells_nothing(refused, PASSPHRASE, TEXT.decode(), "cli-hook-canary")
    allowing = {
        "WEBHOOK_ALLOWED_HOSTS": "hooks.example.com",
        "WEBHOOK_SIGNING_SECRET": "whsec_" + "Y2xpLXRlc3RzLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
    }
    with _sqlite_server(tmp_path, **allowing) as notifying:
        result = ots(*args, "--server", notifying.url, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE)
        assert result.returncode == 0, err(result)
        shown = json.loads(result.stdout)
        told = receipt(notifying, shown["receipt_key"])
    assert (told["notify_url"], told["notification"]) == (hook, "pending")
    assert told["public_id"] == shown["public_id"]


def test_too_many_requests_exits_1(tmp_path: Path) -> None:
    # Per hour: the two creates cannot land in different windows of a sliding counter.
    with _sqlite_server(tmp_path, RATE_LIMIT_CREATE="1/hour") as limited:
        args = ["share", "--server", limited.url]
        assert ots(*args, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE).returncode == 0
        result = ots(*args, stdin=TEXT, OTS_PASSPHRASE=PASSPHRASE)
    assert result.returncode == 1, err(result)
    assert "too many requests" in err(result)
    assert_tells_nothing(result, PASSPHRASE, TEXT.decode())


@contextlib.contextmanager
def scripted_server(
    answers: list[tuple[int, dict[str, str], dict[str, Any]]],
) -> Iterator[tuple[str, list[float]]]:
    """A stand-in server giving `answers` in turn (the last one from then on).

    Yields its URL and the monotonic times at which requests arrived.
    """
    arrived: list[float] = []
    left = list(answers)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived.append(time.monotonic())
            status, headers, body = left.pop(0) if len(left) > 1 else left[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, "content-type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", arrived
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_wait_honours_retry_after() -> None:
    """A 503 or 429 with Retry-After is waited out, not fatal; the wait is at least as asked."""
    revealed = {
        "status": "revealed",
        "created_at": "2026-12-01T10:00:00Z",
        "expires_at": "2026-12-08T10:00:00Z",
        "closed_at": "2026-12-01T10:05:00Z",
        "failed_attempts": 0,
    }
    answers: list[tuple[int, dict[str, str], dict[str, Any]]] = [
        (503, {"retry-after": "0"}, {"detail": "busy"}),
        (429, {"retry-after": "2"}, {"detail": "too many"}),
        (200, {}, revealed),
    ]
    with scripted_server(answers) as (url, arrived):
        result = ots("wait", f"{url}/r/{'e' * 32}")
    assert (result.returncode, result.stdout) == (0, b"revealed\n"), err(result)
    assert len(arrived) == 3
    # A lower bound only: a busy machine makes the wait longer, never shorter.
    assert arrived[2] - arrived[1] >= 2


# --- Never a traceback -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "files"),
    [
        pytest.param(
            ["share"],
            {"OTS_MAX_SECRET_BYTES": "64k"},
            {},
            id="OTS_MAX_SECRET_BYTES not a number",
        ),
        pytest.param(
            ["share", "--passphrase-file", "{passphrase}"],
            {"OTS_PASSPHRASE": ""},
            {"passphrase": b"\xffnot utf-8\n"},
            id="passphrase file not UTF-8",
        ),
        pytest.param(
            ["share", "--token-file", "{token}"],
            {},
            {"token": b"ots_\xff\n"},
            id="token file not UTF-8",
        ),
        pytest.param(
            ["share"],
            {"OTS_TOKEN": "ots_tökén"},
            {},
            id="token not ASCII",
        ),
        pytest.param(
            ["share"],
            # os.fsencode turns it back into the byte 0xff: a passphrase in another encoding.
            {"OTS_PASSPHRASE": "caf\udce9"},
            {},
            id="passphrase not UTF-8",
        ),
    ],
)
def test_odd_input_is_refused_in_words(
    down_url: str, tmp_path: Path, args: list[str], env: dict[str, str], files: dict[str, bytes]
) -> None:
    paths = {name: tmp_path / name for name in files}
    for name, content in files.items():
        paths[name].write_bytes(content)
    argv = [arg.format(**{name: str(path) for name, path in paths.items()}) for arg in args]
    given = {"OTS_SERVER": down_url, "OTS_PASSPHRASE": PASSPHRASE, **env}
    result = ots(*argv, stdin=TEXT, **given)
    assert "Traceback" not in err(result), err(result)
    assert result.returncode == 2, err(result)
    assert err(result).startswith("ots: ")


@SQLITE_ONLY
def test_a_failed_write_of_the_secret_is_told_in_words(server: Uvicorn) -> None:
    """Standard output on a full device: the secret is spent, and the reader should be told."""
    shared = share(server)
    with Path("/dev/full").open("wb") as full:
        result = subprocess.run(  # noqa: S603
            [str(OTS), "reveal", shared.link],
            stdout=full,
            stderr=subprocess.PIPE,
            env=environment(OTS_PASSPHRASE=PASSPHRASE),
            timeout=RUN_SECONDS,
            start_new_session=True,
            check=False,
        )
    message = result.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in message, message
    assert result.returncode != 0
    assert message.startswith("ots: ")


# --- Debug lines -------------------------------------------------------------------------


@SQLITE_ONLY
def test_debug_lines_show_requests_without_keys_or_bodies(server: Uvicorn) -> None:
    shared_run = ots(
        "share",
        "--json",
        "--server",
        server.url,
        stdin=TEXT,
        OTS_PASSPHRASE=PASSPHRASE,
        OTS_DEBUG="1",
    )
    assert shared_run.returncode == 0, err(shared_run)
    shared = Shared(**json.loads(shared_run.stdout))
    status = ots("status", shared.receipt_link, OTS_DEBUG="1")
    wrong = ots("reveal", shared.link, OTS_PASSPHRASE="wrong one", OTS_DEBUG="1")
    right = ots("reveal", shared.link, OTS_PASSPHRASE=PASSPHRASE, OTS_DEBUG="1")
    assert (status.returncode, wrong.returncode, right.returncode) == (0, 1, 0)

    assert "ots: POST /generate -> 200" in err(shared_run)
    assert "ots: GET /receipts/… -> 200" in err(status)
    assert "ots: POST /secrets/… -> 404" in err(wrong)
    assert "ots: POST /secrets/… -> 200" in err(right)
    hidden = [
        shared.secret_key,
        shared.receipt_key,
        shared.fragment,
        PASSPHRASE,
        "wrong one",
        TEXT.decode(),
        "ots1.",  # the envelope, as sent and as received
    ]
    for run in (shared_run, status, wrong, right):
        assert "Traceback" not in err(run)
        for value in hidden:
            assert value not in err(run)


# --- Prompting at a terminal -------------------------------------------------------------


def _take_the_terminal() -> None:
    # In the child, after setsid: the pty (its stderr) becomes the controlling terminal, so
    # /dev/tty, which getpass reads, is the pty.
    fcntl.ioctl(2, termios.TIOCSCTTY, 0)


class Terminal:
    """`ots` running on the slave side of a new pseudo-terminal, its controlling terminal."""

    def __init__(self, *args: str, stdin: Path | None = None) -> None:
        self.master, slave = os.openpty()
        self.seen = bytearray()
        self._cursor = 0
        with contextlib.ExitStack() as stack:
            given = slave if stdin is None else stack.enter_context(stdin.open("rb"))
            self.process = subprocess.Popen(  # noqa: S603
                [str(OTS), *args],
                stdin=given,
                stdout=slave,
                stderr=slave,
                env=environment(),
                start_new_session=True,
                preexec_fn=_take_the_terminal,
            )
        # Only the child holds the slave now: its exit ends the master's output.
        os.close(slave)

    def _read(self, timeout: float) -> bool:
        """Read what is there; return False at the end of the output."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every slave descriptor is closed
            return False
        self.seen += chunk
        return bool(chunk)

    def expect(self, text: str) -> None:
        """Read until `text` appears past what an earlier `expect` consumed."""
        wanted = text.encode()
        deadline = time.monotonic() + PATIENCE_SECONDS
        while (found := self.seen.find(wanted, self._cursor)) < 0:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} in {bytes(self.seen)!r}"
            assert self._read(remaining), f"ended without {text!r}: {bytes(self.seen)!r}"
        self._cursor = found + len(wanted)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> tuple[int, str]:
        """Read to the end; return the exit code and everything shown, with `\\n` endings."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while self._read(max(deadline - time.monotonic(), 0)):
            assert time.monotonic() < deadline, f"never ended: {bytes(self.seen)!r}"
        code = self.process.wait(timeout=RUN_SECONDS)
        return code, self.seen.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


@contextlib.contextmanager
def terminal(*args: str, stdin: Path | None = None) -> Iterator[Terminal]:
    running = Terminal(*args, stdin=stdin)
    try:
        yield running
    finally:
        running.close()


@SQLITE_ONLY
@pytest.mark.parametrize("source", ["FILE", "stdin"])
def test_share_prompts_twice_without_echo(server: Uvicorn, tmp_path: Path, source: str) -> None:
    """`ots share FILE` and `ots share < FILE` both ask at the terminal, and show nothing."""
    path = tmp_path / "secret"
    path.write_bytes(TEXT)
    typed = "typed at a terminal ✓"
    args = ["share", "--server", server.url]
    # From a file argument, standard input is the terminal too; from `< FILE`, it is not.
    opened = terminal(*args, str(path)) if source == "FILE" else terminal(*args, stdin=path)
    with opened as tty:
        tty.expect("Passphrase: ")
        tty.type(typed + "\n")
        tty.expect("Passphrase again: ")
        tty.type(typed + "\n")
        code, shown = tty.finish()
    assert code == 0, shown
    assert typed not in shown
    found = re.search(r"^(http://\S+/s/[0-9a-f]{32}#[A-Za-z0-9_-]{43})$", shown, re.MULTILINE)
    assert found is not None, shown
    revealed = reveal(found.group(1), passphrase=typed)
    assert (revealed.returncode, revealed.stdout) == (0, TEXT), err(revealed)


@SQLITE_ONLY
def test_two_different_passphrases_at_the_prompt_exit_2(server: Uvicorn, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(TEXT)
    with terminal("share", str(path), "--server", server.url) as tty:
        tty.expect("Passphrase: ")
        tty.type("first one\n")
        tty.expect("Passphrase again: ")
        tty.type("second one\n")
        code, shown = tty.finish()
    assert code == 2, shown
    assert "the two passphrases differ" in shown
    assert "Traceback" not in shown
    assert "first one" not in shown
    assert "second one" not in shown


@SQLITE_ONLY
def test_reveal_prompts_once_without_echo(server: Uvicorn) -> None:
    typed = "reader at a terminal ✓"
    shared = share(server, passphrase=typed)
    with terminal("reveal", shared.link) as tty:
        tty.expect("Passphrase: ")
        tty.type(typed + "\n")
        code, shown = tty.finish()
    assert code == 0, shown
    assert typed not in shown
    assert "again" not in shown
    assert shown.endswith(TEXT.decode()), shown
