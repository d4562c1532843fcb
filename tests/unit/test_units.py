"""Small modules on their own: settings, crypto, hashing."""

import asyncio
import os
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidTag
from passlib.hash import argon2 as passlib_argon2

from api.domain import crypto
from api.domain.hashing import LEGACY, Argon2Parameters, PassphraseHasher, protect, unlock
from api.settings import InvalidSettings, Settings, load_settings
from tests.clocks import FakeClock


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./secrets.db"
    assert (settings.default_ttl_seconds, settings.min_ttl_seconds) == (604_800, 60)
    assert settings.max_ttl_seconds == 2_592_000
    assert (settings.max_secret_bytes, settings.max_passphrase_length) == (65_536, 1024)
    assert (settings.max_failed_attempts, settings.purge_interval_seconds) == (5, 60)
    assert (settings.argon2_memory_kib, settings.argon2_time_cost) == (19_456, 2)
    assert settings.argon2_parallelism == 1
    assert settings.graphiql
    assert settings.auto_migrate
    assert (settings.db_pool_size, settings.db_pool_timeout_seconds) == (10, 5)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MAX_FAILED_ATTEMPTS": "zero"}, "MAX_FAILED_ATTEMPTS"),
        ({"MIN_TTL_SECONDS": "100", "DEFAULT_TTL_SECONDS": "50"}, "DEFAULT_TTL_SECONDS"),
        ({"DATABASE_URL": "mysql://user:hunter2@db/x"}, "DATABASE_URL"),
        ({"ARGON2_MEMORY_KIB": "1024", "ALLOW_WEAK_ARGON2": "false"}, "ALLOW_WEAK_ARGON2"),
        ({"GRAPHIQL": "maybe"}, "GRAPHIQL"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InvalidSettings) as caught:
        load_settings()
    assert named in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_secret_keys_are_128_bit_hex() -> None:
    keys = {crypto.new_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(crypto.is_well_formed_key(key) for key in keys)
    assert not crypto.is_well_formed_key("A" * 32)
    assert not crypto.is_well_formed_key("a" * 31)


@pytest.mark.parametrize("material", [LEGACY, b"m" * 32], ids=["legacy", "passphrase-bound"])
def test_seal_round_trip_and_tamper_detection(material: bytes) -> None:
    key, other = crypto.new_key(), crypto.new_key()

    def seal(data: bytes) -> bytes:
        return crypto.seal(data, secret_key=key, key_material=material, associated_data=b"row-1")

    def open_(sealed: bytes, *, secret_key: str = key, row: bytes = b"row-1") -> bytes:
        return crypto.open_sealed(
            sealed, secret_key=secret_key, key_material=material, associated_data=row
        )

    sealed = seal(b"\x00payload")
    assert open_(sealed) == b"\x00payload"
    assert sealed != seal(b"\x00payload")
    with pytest.raises(InvalidTag):
        open_(sealed, secret_key=other)
    with pytest.raises(InvalidTag):
        open_(sealed, row=b"row-2")
    # The other format's key never opens it: the passphrase's material is part of the key.
    with pytest.raises(InvalidTag):
        crypto.open_sealed(
            sealed,
            secret_key=key,
            key_material=b"n" * 32 if material else b"m" * 32,
            associated_data=b"row-1",
        )


def test_lookup_hash_is_sha256_of_the_key() -> None:
    import hashlib

    key = crypto.new_key()
    assert crypto.lookup_hash(key) == hashlib.sha256(key.encode()).digest()


async def test_default_hasher_uses_owasp_argon2id() -> None:
    settings = Settings(
        argon2_memory_kib=19456, argon2_time_cost=2, argon2_parallelism=1, allow_weak_argon2=False
    )
    hasher = PassphraseHasher.from_settings(settings)
    protected = await hasher.protect("correct horse")
    assert protected.record.startswith("$ots2$m=19456,t=2,p=1$")
    assert len(protected.key_material) == 32
    assert protected.key_material.hex() not in protected.record
    assert await hasher.unlock("correct horse", protected.record) == protected.key_material
    assert await hasher.unlock("wrong horse", protected.record) is None
    assert await hasher.unlock("correct horse", None) is None
    # The first format (passlib's PHC string) is still checked, and has no key material.
    legacy = passlib_argon2.using(type="ID", memory_cost=1024, rounds=1).hash("old")
    assert await hasher.unlock("old", legacy) == LEGACY
    assert await hasher.unlock("new", legacy) is None


def test_one_argon2id_evaluation_gives_both_halves() -> None:
    """The record and the key material come from the same raw output, split by HMAC."""
    parameters = Argon2Parameters(memory_kib=1024, time_cost=1, parallelism=1)
    salt = b"s" * 16
    first = protect("p", parameters, salt=salt)
    assert protect("p", parameters, salt=salt) == first
    assert unlock("p", first.record) == first.key_material
    assert protect("q", parameters, salt=salt).key_material != first.key_material


async def test_hashing_runs_off_the_event_loop() -> None:
    """While a hash is being computed, the event loop is free to run other tasks.

    No clock: hashed on the loop, the task would finish within its first step; handed to a
    thread, it is still waiting when the loop comes back to this test, which is the next
    thing the loop runs (the thread's answer takes at least two more turns of the loop).
    """
    hasher = PassphraseHasher(memory_kib=19456, time_cost=2, parallelism=1, workers=2)
    assert not hasher.runs_inline
    hashing = [asyncio.create_task(hasher.protect("p")) for _ in range(4)]
    await asyncio.sleep(0)  # each task takes its first step, then this test goes on
    assert not any(task.done() for task in hashing)
    protected = await asyncio.gather(*hashing)
    assert len({item.record for item in protected}) == 4


def test_main_exposes_the_asgi_app() -> None:
    import main

    assert main.app.title == "One-time secrets"


async def test_trivial_parameters_hash_inline_and_real_ones_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hasher times one evaluation at start; below INLINE_BELOW_SECONDS it runs inline.

    The timing is the hasher's own clock, made to read what the test says the evaluation
    took: how fast this machine hashes is no part of the verdict.
    """
    from api.domain import hashing

    clock = FakeClock()
    evaluate = hashing.unlock

    def unlock_taking(seconds: float) -> Callable[[str, str], bytes | None]:
        def timed(passphrase: str, record: str) -> bytes | None:
            clock.advance(seconds)
            return evaluate(passphrase, record)

        return timed

    monkeypatch.setattr(hashing, "time", clock)
    cheap_parameters = {"memory_kib": 8, "time_cost": 1, "parallelism": 1, "workers": 1}
    monkeypatch.setattr(hashing, "unlock", unlock_taking(hashing.INLINE_BELOW_SECONDS / 2))
    cheap = PassphraseHasher(**cheap_parameters)
    monkeypatch.setattr(hashing, "unlock", unlock_taking(hashing.INLINE_BELOW_SECONDS))
    slow = PassphraseHasher(**cheap_parameters)
    monkeypatch.undo()
    # Real parameters on the real clock: no machine fills 19 MiB twice in a millisecond.
    real = PassphraseHasher(memory_kib=19456, time_cost=2, parallelism=1, workers=1)
    assert cheap.runs_inline
    assert not slow.runs_inline
    assert not real.runs_inline
    assert await cheap.unlock("p", (await cheap.protect("p")).record) is not None
    assert await slow.unlock("p", (await slow.protect("p")).record) is not None


@pytest.mark.parametrize(("processes", "expected"), [(None, 8), ("1", 8), ("2", 4), ("16", 1)])
def test_hash_threads_share_the_cores_between_worker_processes(
    monkeypatch: pytest.MonkeyPatch, processes: str | None, expected: int
) -> None:
    from api.domain import hashing

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    if processes is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", processes)
    assert hashing._default_workers() == expected
