"""Where the client's passphrase comes from: a file, the environment, a prompt, or made here."""

import getpass
import os
import secrets
from pathlib import Path

ENV_PASSPHRASE = "OTS_PASSPHRASE"  # noqa: S105  (a variable's name)
# Crockford's base32, as the pages use: no i, l, o or u, so one read aloud or copied by hand
# survives. 25 symbols of 32: 125 bits.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
GROUPS, GROUP_LENGTH = 5, 5


class NoPassphrase(Exception):
    """No passphrase was given, and there is no terminal to ask on."""


class PassphraseMismatch(Exception):
    """The two passphrases typed at the prompt differ."""


def generate() -> str:
    """Return a strong random passphrase, like `k7fq2-mw9xp-…` (five groups of five)."""
    return "-".join(
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)
    )


def read_file(path: Path) -> str:
    """Return the passphrase in `path`, without the line ending that editors add."""
    text = path.read_text(encoding="utf-8")
    return text.removesuffix("\n").removesuffix("\r")


def obtain(file: Path | None, *, confirm: bool) -> str:
    """Return the passphrase from `file`, else `OTS_PASSPHRASE`, else the terminal.

    At the terminal the passphrase is read without echo, twice when `confirm` (a typo when
    sharing would make the secret unreadable).
    """
    if file is not None:
        return read_file(file)
    if os.environ.get(ENV_PASSPHRASE):
        return os.environ[ENV_PASSPHRASE]
    if not _has_terminal():
        raise NoPassphrase
    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Passphrase again: ") != first:
        raise PassphraseMismatch
    return first


def _has_terminal() -> bool:
    # getpass reads /dev/tty, so `ots share < file` still asks at the terminal.
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True
