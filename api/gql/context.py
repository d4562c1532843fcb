"""The per-request GraphQL context, built from the same engine dependency as REST."""

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.fastapi import BaseContext

from api.db import EngineDep


class Context(BaseContext):
    """Carries the application's database engine to the resolvers."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine


async def get_context(engine: EngineDep) -> Context:
    """Build the context; FastAPI resolves `engine` exactly as it does for REST routes."""
    return Context(engine)
