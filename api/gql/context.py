"""The per-request GraphQL context, built from the same database dependency as REST."""

from strawberry.fastapi import BaseContext

from api.deps import Database, DatabaseDep
from api.domain.creators import Creator


class Context(BaseContext):
    """Carries the application's database to the resolvers, and who is creating.

    `creator` is set before a creating document runs, in token mode only, by the rate-limit
    extension (`api.gql.ratelimit`) from `api.plumbing.authentication`.
    """

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.creator: Creator | None = None


async def get_context(db: DatabaseDep) -> Context:
    """Build the context; FastAPI resolves `db` exactly as it does for REST routes."""
    return Context(db)
