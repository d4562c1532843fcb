"""The per-request GraphQL context, built from the same database dependency as REST."""

from strawberry.fastapi import BaseContext

from api.deps import DatabaseDep
from api.storage.database import Database


class Context(BaseContext):
    """Carries the application's database to the resolvers."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db


async def get_context(db: DatabaseDep) -> Context:
    """Build the context; FastAPI resolves `db` exactly as it does for REST routes."""
    return Context(db)
