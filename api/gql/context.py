"""The per-request GraphQL context, built from the same database dependency as REST."""

from strawberry.fastapi import BaseContext

from api.deps import DatabaseDep
from api.domain.creators import Creator
from api.storage.database import Database


class Context(BaseContext):
    """Carries the application's database to the resolvers, and who is creating.

    `creator` is set before a creating document runs, in token mode only
    (`api.gql.ratelimit`).
    """

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.creator: Creator | None = None


async def get_context(db: DatabaseDep) -> Context:
    """Build the context; FastAPI resolves `db` exactly as it does for REST routes."""
    return Context(db)
