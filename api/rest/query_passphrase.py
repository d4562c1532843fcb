"""The passphrase of the original API's query-string forms, checked in its raw bytes.

Starlette decodes a query string with `errors="replace"`: `?passphrase=%ff%fe` (not UTF-8)
or `%ed%a0%80` (a surrogate, which UTF-8 may not encode) reaches the route as U+FFFD
characters, a valid passphrase that is merely wrong, and the reveal claims an attempt for
it. In a JSON body the same passphrase is refused (`422`, no attempt claimed). So the
`GET` and `DELETE` forms check the raw query string first and refuse, in the service's words,
a passphrase whose bytes are not UTF-8 text, and one given twice (Starlette reads the last,
a proxy or a firewall in front may read the first).
"""

from urllib.parse import unquote_to_bytes

from fastapi import Request

from api.domain import inputs
from api.domain.errors import InvalidInput

_NAME = b"passphrase"


def _raw_values(query_string: bytes, name: bytes) -> list[bytes]:
    values = []
    for part in query_string.split(b"&"):
        key, _, value = part.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name:
            values.append(value)
    return values


def _is_text(raw: bytes) -> bool:
    # A URL is ASCII (servers refuse raw bytes beyond it); what it encodes must be UTF-8.
    if not raw.isascii():
        return False
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def check_query_passphrase(request: Request) -> None:
    """Refuse (`InvalidInput`, 422) a query-string passphrase that is not text or is repeated.

    Runs before the route reads the passphrase, so nothing is claimed for a refused one.
    """
    values = _raw_values(request.scope["query_string"], _NAME)
    if len(values) > 1:
        raise InvalidInput("passphrase", "passphrase must be given once")
    if values and not _is_text(values[0]):
        raise InvalidInput("passphrase", inputs.not_text_message("passphrase"))
