"""A naive one-time secret service, written the obvious way from the original design.

This is what a typical solution looks like, and the benchmark's baseline: FastAPI with one
`async def` per route, SQLModel's async session, the argon2 calls made directly in the
handler (on the event loop), the secret stored as it came, and reveal done as
select -> verify -> delete. It uses the same argon2id parameters as the service
(the same environment variables) and its own table, `baseline_secrets`.

Run: `DATABASE_URL=postgresql+asyncpg://... uvicorn bench.baseline.app:app --workers 2`.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException
from passlib.hash import argon2
from pydantic import BaseModel
from sqlalchemy import DateTime
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

hasher: Any = argon2.using(
    type="ID",
    memory_cost=int(os.environ.get("ARGON2_MEMORY_KIB", "19456")),
    rounds=int(os.environ.get("ARGON2_TIME_COST", "2")),
    parallelism=int(os.environ.get("ARGON2_PARALLELISM", "1")),
)


class BaselineSecret(SQLModel, table=True):
    """A stored secret, keyed by the key handed to its creator."""

    __tablename__ = "baseline_secrets"

    id: str = Field(primary_key=True)
    secret: str
    passphrase_hash: str
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))


class GenerateRequest(BaseModel):
    """The secret, its passphrase and an optional lifetime."""

    secret: str
    passphrase: str
    ttl_seconds: int = 604_800


def create_engine() -> AsyncEngine:
    """Create the async engine for DATABASE_URL, with the service's default pool size."""
    # SQLAlchemy's default pool (5 + 10 overflow) would open and close connections under
    # this load; the service keeps 10. The same pool keeps the comparison about the code.
    return create_async_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=0)


async def create_schema(engine: AsyncEngine) -> None:
    """Create the baseline's table if it does not exist."""
    async with engine.begin() as connection:
        table = BaselineSecret.__table__  # type: ignore[attr-defined]
        await connection.run_sync(SQLModel.metadata.create_all, tables=[table])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the engine, create the table, close the engine."""
    app.state.engine = create_engine()
    await create_schema(app.state.engine)
    yield
    await app.state.engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/generate")
async def generate(body: GenerateRequest) -> dict[str, str]:
    """Store a secret and return its key."""
    secret_key = uuid.uuid4().hex
    row = BaselineSecret(
        id=secret_key,
        secret=body.secret,
        passphrase_hash=hasher.hash(body.passphrase),
        expires_at=datetime.now(UTC) + timedelta(seconds=body.ttl_seconds),
    )
    async with AsyncSession(app.state.engine) as session:
        session.add(row)
        await session.commit()
    return {"secret_key": secret_key}


@app.get("/secrets/{secret_key}")
async def reveal(secret_key: str, passphrase: str) -> dict[str, str]:
    """Return the secret once and delete it."""
    async with AsyncSession(app.state.engine) as session:
        row = await session.get(BaselineSecret, secret_key)
        if (
            row is None
            or row.expires_at < datetime.now(UTC)
            or not hasher.verify(passphrase, row.passphrase_hash)
        ):
            raise HTTPException(status_code=404, detail="Secret not found")
        secret = row.secret
        await session.delete(row)
        await session.commit()
    return {"secret": secret}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Report that the process is alive."""
    return {"status": "ok"}
