"""The `ots1` format in Python (`ots.envelope`, `ots.link`) against the published vectors."""

import json
from typing import Any

import pytest

from harness import ROOT
from ots.envelope import (
    EnvelopeError,
    decode_base64url,
    decode_key,
    encode_base64url,
    envelope_length,
    max_plaintext_bytes,
    new_key,
    open_envelope,
    seal,
)
from ots.link import LinkError, parse_receipt_link, parse_secret_link, receipt_link, secret_link

VECTORS: dict[str, Any] = json.loads((ROOT / "docs" / "e2e-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["description"][:30])
def test_valid_vectors_seal_and_open(vector: dict[str, Any]) -> None:
    key = decode_key(vector["key"])
    plaintext = decode_base64url(vector["plaintext_base64url"])
    if vector["plaintext"] is not None:
        assert plaintext == vector["plaintext"].encode("utf-8")
    assert seal(plaintext, key, nonce=bytes.fromhex(vector["nonce_hex"])) == vector["envelope"]
    assert open_envelope(vector["envelope"], key) == plaintext
    assert len(vector["envelope"]) == envelope_length(len(plaintext))


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["description"][:30])
def test_invalid_vectors_do_not_open(vector: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError):
        open_envelope(vector["envelope"], decode_key(vector["key"]))


@pytest.mark.parametrize("size", VECTORS["sizes"], ids=lambda s: str(s["max_envelope_bytes"]))
def test_the_largest_plaintext_that_fits(size: dict[str, int]) -> None:
    fits = max_plaintext_bytes(size["max_envelope_bytes"])
    assert fits == size["max_plaintext_bytes"]
    envelope = seal(b"x" * fits, new_key())
    assert len(envelope.encode()) <= size["max_envelope_bytes"]
    if fits:
        assert len(seal(b"x" * (fits + 1), new_key())) > size["max_envelope_bytes"]


def test_every_seal_has_its_own_nonce() -> None:
    key = new_key()
    assert seal(b"same", key) != seal(b"same", key)
    assert new_key() != new_key()


@pytest.mark.parametrize("text", ["AA=", "A+B/", "AA AA", "A", "AB", "AAA\n", "é"], ids=repr)
def test_base64url_has_one_spelling(text: str) -> None:
    with pytest.raises(EnvelopeError):
        decode_base64url(text)


def test_base64url_round_trips_every_length() -> None:
    for length in range(70):
        data = bytes(range(length))
        assert decode_base64url(encode_base64url(data)) == data


@pytest.mark.parametrize("key", ["", "AAAA", encode_base64url(bytes(33))], ids=repr)
def test_a_key_is_32_bytes(key: str) -> None:
    with pytest.raises(EnvelopeError):
        decode_key(key)


def test_links_round_trip() -> None:
    key = new_key()
    link = secret_link("https://ots.example/", "0" * 32, key)
    assert link == f"https://ots.example/s/{'0' * 32}#{encode_base64url(key)}"
    parsed = parse_secret_link(link)
    assert (parsed.origin, parsed.secret_key, parsed.key) == ("https://ots.example", "0" * 32, key)
    assert parse_secret_link(f"http://h:8000/base/s/{'a' * 32}").key is None
    assert parse_secret_link(f"http://h:8000/base/s/{'a' * 32}").origin == "http://h:8000/base"
    assert parse_receipt_link(receipt_link("https://h", "b" * 32)) == ("https://h", "b" * 32)
    assert parse_secret_link(f" {link}\n").key == key  # as pasted, with a line ending


@pytest.mark.parametrize(
    "link",
    [
        "ftp://h/s/" + "a" * 32,
        "https://h/s/" + "A" * 32,
        "https://h/r/" + "a" * 32,
        "/s/" + "a" * 32,
    ],
)
def test_links_that_are_not_secret_links(link: str) -> None:
    with pytest.raises(LinkError):
        parse_secret_link(link)
