"""`ots`: share a secret from a terminal, end to end encrypted, and follow what becomes of it.

    ots share [FILE]            encrypt FILE (or standard input) here; print the link and
                                the receipt link
    ots reveal LINK [-o FILE]   the secret's bytes, exactly as they were shared
    ots status RECEIPT_LINK     pending, revealed, burned, revoked, destroyed or expired
    ots revoke RECEIPT_LINK     destroy it while it is still pending
    ots wait RECEIPT_LINK       return when it is no longer pending

The links are the pages' links (`docs/e2e.md`): a secret shared here opens in a browser, and
one shared from the page reveals here.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ots import __version__, passphrase
from ots.envelope import (
    EnvelopeError,
    is_envelope,
    max_plaintext_bytes,
    new_key,
    open_envelope,
    seal,
)
from ots.link import LinkError, parse_receipt_link, parse_secret_link, receipt_link, secret_link
from ots.server import (
    OK,
    REFUSED,
    USAGE,
    ClientError,
    Service,
)

WAIT_TIMED_OUT = 124  # as timeout(1) says it
DEFAULT_MAX_SECRET_BYTES = 65_536  # the service's default MAX_SECRET_BYTES
TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
EXIT_CODES = """exit status:
  0    success (wait: the secret was revealed)
  1    not found or refused (wait: it ended another way)
  2    usage: a bad option, a missing passphrase, a link without its key
  3    the server is unavailable, or the network failed
  4    authentication: the server refused the creator token (401)
  5    quota: the server has no room for more secrets (507)
  124  wait: the timeout passed first

environment:
  OTS_SERVER      the server to share on (--server)
  OTS_PASSPHRASE  the passphrase (else --passphrase-file, else a prompt)
  OTS_TOKEN       the creator token, on servers with CREATE_AUTH=token (else --token-file)
  OTS_DEBUG=1     one line per request on standard error, keys and bodies left out
"""


class UsageError(ClientError):
    """The command line cannot be carried out as given: exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ots` with `argv`; return its exit status. Messages go to standard error."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ClientError as error:
        print(f"ots: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("ots: interrupted", file=sys.stderr)
        return 130
    return code


def share(args: argparse.Namespace) -> int:
    """Encrypt the input here, store the envelope, print the link and the receipt link."""
    server = _server(args)
    ttl = _ttl(args.ttl) if args.ttl is not None else None
    max_secret_bytes = _max_secret_bytes(args)
    data = _read_input(args.file)
    limit = max_plaintext_bytes(max_secret_bytes)
    if len(data) > limit:
        raise UsageError(
            f"the secret is {len(data)} bytes; at most {limit} fit in a secret of "
            f"{max_secret_bytes} bytes (MAX_SECRET_BYTES) once encrypted"
        )
    if not data:
        raise UsageError("the secret is empty")
    if args.generate_passphrase:
        if args.passphrase_file is not None or os.environ.get(passphrase.ENV_PASSPHRASE):
            raise UsageError(
                "--generate-passphrase makes the passphrase: leave out --passphrase-file and "
                f"{passphrase.ENV_PASSPHRASE}"
            )
        words = passphrase.generate()
        print(f"Passphrase: {words}", file=sys.stderr)
    else:
        words = _passphrase(args, confirm=True)
    key = new_key()
    with Service(server, token=_token(args)) as service:
        created = service.create(
            secret=seal(data, key), passphrase=words, ttl_seconds=ttl, notify_url=args.notify_url
        )
    link = secret_link(server, created.secret_key, key)
    receipt = receipt_link(server, created.receipt_key)
    if args.json:
        shown = {
            "link": link,
            "receipt_link": receipt,
            "secret_key": created.secret_key,
            "receipt_key": created.receipt_key,
            "expires_at": created.expires_at,
            "public_id": created.public_id,
        }
        print(json.dumps(shown))
    else:
        print(link)
        print(receipt)
        print(
            f"Expires {_local(created.expires_at)}. Send the passphrase by another channel "
            "than the link; keep the receipt link to follow or revoke it.",
            file=sys.stderr,
        )
    return OK


def reveal(args: argparse.Namespace) -> int:
    """Reveal a secret (once) and write its bytes to standard output or `-o FILE`."""
    try:
        link = parse_secret_link(args.link)
    except EnvelopeError:
        raise UsageError(
            "the key after '#' in this link is damaged: ask the sender for the link again"
        ) from None
    except LinkError as error:
        raise UsageError(str(error)) from None
    if link.key is None and not args.plain:
        raise UsageError(
            "this link has no key after '#': it may have lost it on the way (some chat tools "
            "cut it off). Check it with the sender; nothing was spent. Use --plain only for a "
            "secret stored in plain through the API"
        )
    words = _passphrase(args, confirm=False)
    with _output(args.output) as output, Service(link.origin) as service:
        text = service.reveal(link.secret_key, words)
        if link.key is not None and is_envelope(text):
            try:
                data = open_envelope(text, link.key)
            except EnvelopeError:
                raise ClientError(
                    "the link is incomplete: its key does not open the secret, which is now "
                    "deleted from the server. Ask the sender to share it again",
                    REFUSED,
                ) from None
        elif is_envelope(text):
            raise ClientError(
                "the secret is end-to-end encrypted, and this link has no key to open it. "
                "It is now deleted from the server: ask the sender to share it again",
                REFUSED,
            )
        else:
            data = text.encode("utf-8")
        try:
            output.write(data)
            output.flush()
        except OSError as error:
            raise ClientError(
                f"the secret could not be written ({error.strerror}), and it is now deleted "
                "from the server: ask the sender to share it again",
                REFUSED,
            ) from None
    return OK


def status(args: argparse.Namespace) -> int:
    """Print what became of the secret: its status, times and failed attempts."""
    origin, receipt_key = _receipt_link(args.receipt_link)
    with Service(origin) as service:
        receipt = service.receipt(receipt_key)
    _print_receipt(receipt, as_json=args.json)
    return OK


def revoke(args: argparse.Namespace) -> int:
    """Destroy the secret if it is still pending: 0 when it is now revoked, else 1."""
    origin, receipt_key = _receipt_link(args.receipt_link)
    with Service(origin) as service:
        receipt = service.revoke(receipt_key)
    _print_receipt(receipt, as_json=args.json)
    if receipt["status"] != "revoked":
        print(f"ots: nothing to revoke: the secret is {receipt['status']}", file=sys.stderr)
        return REFUSED
    return OK


def wait(args: argparse.Namespace) -> int:
    """Poll the receipt until it leaves `pending`: 0 revealed, 1 another end, 124 timeout."""
    origin, receipt_key = _receipt_link(args.receipt_link)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    delay = 1.0
    with Service(origin) as service:
        while True:
            asked = 0.0
            try:
                receipt = service.receipt(receipt_key)
            except ClientError as error:
                if error.retry_after is None:
                    raise
                asked = error.retry_after  # 429 or 503: not before the server says
            else:
                if receipt["status"] != "pending":
                    print(receipt["status"])
                    return OK if receipt["status"] == "revealed" else REFUSED
            pause = max(delay, asked)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or asked > left:
                    print("ots: still pending when the timeout passed", file=sys.stderr)
                    return WAIT_TIMED_OUT
                pause = min(pause, left)  # one last look at the deadline itself
            time.sleep(pause)
            delay = min(delay * 1.5, 30.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ots",
        description="Share a secret that can be read once, encrypted end to end.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ots {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", help="the server's URL (default: $OTS_SERVER)")
    common.add_argument(
        "--token-file", type=Path, help="a file holding the creator token (default: $OTS_TOKEN)"
    )

    def command(name: str, run: Callable[[argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=text,
            description=text,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    passphrase_file = {"type": Path, "help": "read the passphrase from this file"}
    sub = command("share", share, "Encrypt a secret here and print its link and receipt link.")
    sub.add_argument("file", nargs="?", default="-", help="the secret (default: standard input)")
    sub.add_argument("--ttl", help="1h, 1d, 7d, 30d, or seconds (default: the server's)")
    sub.add_argument("--passphrase-file", **passphrase_file)
    sub.add_argument(
        "--generate-passphrase",
        action="store_true",
        help="make a strong passphrase and print it on standard error",
    )
    sub.add_argument("--json", action="store_true", help="print a JSON object")
    sub.add_argument(
        "--notify-url",
        help="tell this https:// URL, signed, when the secret is revealed, burned, revoked or "
        "expires (the server must allow its host)",
    )
    sub.add_argument(
        "--max-secret-bytes",
        type=_positive_int,
        help="the server's MAX_SECRET_BYTES, checked before sending (default: "
        f"$OTS_MAX_SECRET_BYTES, else {DEFAULT_MAX_SECRET_BYTES})",
    )

    sub = command("reveal", reveal, "Reveal a secret, once, and write its bytes out.")
    sub.add_argument("link", help="the link, with its #key")
    sub.add_argument("--passphrase-file", **passphrase_file)
    sub.add_argument("-o", "--output", type=Path, help="write to this new file (mode 0600) instead")
    sub.add_argument(
        "--plain",
        action="store_true",
        help="the link has no #key because the secret was stored in plain through the API",
    )

    for name, run, text in (
        ("status", status, "Print what became of a secret."),
        ("revoke", revoke, "Destroy a secret that is still pending."),
    ):
        sub = command(name, run, text)
        sub.add_argument("receipt_link", help="the receipt link printed by share")
        sub.add_argument("--json", action="store_true", help="print the receipt as JSON")

    sub = command("wait", wait, "Wait until a secret is no longer pending.")
    sub.add_argument("receipt_link", help="the receipt link printed by share")
    sub.add_argument("--timeout", type=_seconds, help="give up after this many seconds (124)")
    return parser


def _server(args: argparse.Namespace) -> str:
    server = args.server or os.environ.get("OTS_SERVER")
    if not server:
        raise UsageError("no server: use --server URL or set OTS_SERVER")
    if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", server):
        raise UsageError("the server must be an http:// or https:// URL, without ? or #")
    return server.rstrip("/")


def _max_secret_bytes(args: argparse.Namespace) -> int:
    if args.max_secret_bytes is not None:
        return int(args.max_secret_bytes)
    text = os.environ.get("OTS_MAX_SECRET_BYTES", str(DEFAULT_MAX_SECRET_BYTES))
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise UsageError("OTS_MAX_SECRET_BYTES must be a number of bytes") from None


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,12}", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a positive number of bytes")
    return int(text)


def _token(args: argparse.Namespace) -> str | None:
    token_file: Path | None = args.token_file
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise UsageError(f"cannot read the token file: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError("the token file does not hold a creator token (not UTF-8)") from None
    else:
        token = os.environ.get("OTS_TOKEN", "")
    if token and not token.isascii():
        # Tokens from `ots-admin tokens create` are ASCII; anything else cannot be a header.
        raise UsageError("the creator token is not one ots-admin made (it is not ASCII)")
    return token or None


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    try:
        words = passphrase.obtain(args.passphrase_file, confirm=confirm)
    except OSError as error:
        raise UsageError(f"cannot read the passphrase file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError("cannot read the passphrase file: it is not UTF-8 text") from None
    except passphrase.NoPassphrase:
        raise UsageError(
            "no passphrase: use --passphrase-file, set OTS_PASSPHRASE, or run in a terminal"
            + (" (or --generate-passphrase)" if confirm else "")
        ) from None
    except passphrase.PassphraseMismatch:
        raise UsageError("the two passphrases differ") from None
    if not words:
        raise UsageError("the passphrase is empty")
    try:
        words.encode("utf-8")
    except UnicodeEncodeError:  # bytes from a terminal or environment in another encoding
        raise UsageError("the passphrase is not valid UTF-8 text") from None
    return words


def _ttl(text: str) -> int:
    match = re.fullmatch(r"([0-9]{1,9})([smhd]?)", text.strip())
    if not match:
        raise UsageError("--ttl takes 1h, 1d, 7d, 30d, or a number of seconds")
    return int(match.group(1)) * TTL_UNITS[match.group(2) or "s"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("expected a number of seconds")
    return value


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror}") from None


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    """Yield standard output, or a new file of mode 0600 opened before anything is spent.

    A failed reveal removes the file again, so no empty file suggests a secret was read.
    """
    if path is None:
        yield sys.stdout.buffer
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise UsageError(f"cannot create {path}: {error.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        try:
            yield file
        except BaseException:
            file.close()
            path.unlink(missing_ok=True)
            raise


def _receipt_link(text: str) -> tuple[str, str]:
    try:
        return parse_receipt_link(text)
    except LinkError as error:
        raise UsageError(str(error)) from None


def _print_receipt(receipt: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(receipt))
        return
    print(f"status: {receipt['status']}")
    for field in ("created_at", "expires_at", "closed_at"):
        if receipt.get(field):
            print(f"{field.removesuffix('_at')}: {_local(receipt[field])}")
    print(f"failed attempts: {receipt['failed_attempts']}")


def _local(timestamp: str) -> str:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
