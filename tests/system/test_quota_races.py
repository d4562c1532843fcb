"""The storage quota holds under concurrent creates from several processes, with no slack.

A real uvicorn with two workers serves a fresh database of each kind; three client processes
send all their creates at the same moment, half through REST and half through GraphQL, for
three times the room there is. Exactly the room is taken: not one secret more (the quota is
checked in the transaction that stores, `api.storage.usage`), not one fewer. Reveals then
work at the full store and free their room at once for the next race. The processes start
once all are ready; creates of at least two of them must have been in flight at once.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.domain import crypto
from api.settings import Settings
from api.storage import usage
from api.storage.database import Database, create_engine
from api.storage.statements import secret_columns
from tests.conftest import create_pg_database, drop_pg_database
from tests.system.racing import run_racers
from tests.system.servers import run_server

ROOM = 40
RACERS = 3
SECRET = "q" * 200
PASSPHRASE = "quota-race"
SIZE = len(SECRET) + crypto.NONCE_BYTES + 16  # ciphertext: nonce, secret, tag


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the current backend, for this test alone."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/quota.db"
        return
    url = asyncio.run(create_pg_database())
    yield url
    asyncio.run(drop_pg_database(url))


async def _stored(url: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(What the table holds, what the kept totals say), each as (bytes, secrets)."""
    db = Database(create_engine(Settings(database_url=url)))
    try:
        rows = await db.execute(
            select(func.sum(func.length(secret_columns.ciphertext)), func.count())
        )
        return (int(rows[0][0] or 0), int(rows[0][1])), await usage.totals(db)
    finally:
        await db.aclose()


def _race(url: str, tmp_path: Path, count: int) -> tuple[list[dict[str, Any]], int]:
    """Race `count` creates from each process; return their records and the peak in flight."""
    plan = {"url": url, "count": count, "secret": SECRET}
    plans = [{**plan, "passphrase": f"{PASSPHRASE}-{number}"} for number in range(RACERS)]
    results = run_racers(plans, tmp_path, module="tests.system.create_racer")
    records = []
    for number, racer in enumerate(results):
        records += [
            {**record, "racer": number, "passphrase": plans[number]["passphrase"]}
            for record in racer
        ]
    in_flight = [
        [other for other in records if other["sent_at"] <= record["sent_at"] < other["at"]]
        for record in records
    ]
    # Raced: at some moment creates from two processes at least were in flight together. How
    # many at the peak is the machine's doing, and only printed.
    assert max(len({other["racer"] for other in now}) for now in in_flight) >= 2
    return records, max(len(now) for now in in_flight)


@pytest.mark.parametrize("limit", ["secrets", "bytes"])
def test_the_quota_holds_under_concurrent_creates_from_several_processes(
    fresh_database_url: str, limit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quota = (
        {"MAX_LIVE_SECRETS": str(ROOM)}
        if limit == "secrets"
        else {"MAX_STORED_BYTES": str(ROOM * SIZE + SIZE // 2)}
    )
    env = {"DATABASE_URL": fresh_database_url, "SERVER_LOG": str(tmp_path / "uvicorn.log"), **quota}
    with run_server(env, workers=2) as server:
        records, peak = _race(server.url, tmp_path, ROOM)
        created = [record for record in records if record["outcome"] == "created"]
        assert len(created) == ROOM
        assert len(records) - len(created) == (RACERS - 1) * ROOM  # the rest refused: 507
        table, kept = asyncio.run(_stored(fresh_database_url))
        assert table == kept == (ROOM * SIZE, ROOM)

        # At a full store reveals work, and each frees its room at once.
        freed = 10
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for record in created[:freed]:
                revealed = http.post(
                    f"/secrets/{record['key']}", json={"passphrase": record["passphrase"]}
                )
                assert revealed.json() == {"secret": SECRET}
        again, _ = _race(server.url, tmp_path, freed)
        assert sum(record["outcome"] == "created" for record in again) == freed
        table, kept = asyncio.run(_stored(fresh_database_url))
        assert table == kept == (ROOM * SIZE, ROOM)
    with capsys.disabled():
        print(
            f"\nquota race [{fresh_database_url.split(':')[0]}, {limit}]: "
            f"{len(records)} creates for {ROOM} places -> {len(created)} stored "
            f"({peak} in flight at the peak); "
            f"{RACERS * freed} for {freed} freed -> {freed} stored"
        )
